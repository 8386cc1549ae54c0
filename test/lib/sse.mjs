// The test harnesses' Server-Sent Events parser (WHATWG HTML, "Interpreting
// an event stream"), used by the e2e, browser and abuse suites; the C test
// clients use test/lib/sseparse.c, which keeps the same rules.
//
//   const p = new SseParser({ onEvent, onComment, onRetry });
//   p.feed(text) ... ;  p.begin() when a new stream (connection) starts.
//
// Callbacks: onEvent({id, event, data}), onComment(text), onRetry(ms).
// Rules: lines end in CRLF, LF or CR (a CRLF split between feeds is one line
// end); one leading BOM of a stream is skipped; ':' starts a comment; one
// space after the colon is dropped; a line without a colon is a field with
// an empty value; data lines are joined with LF; an id containing NUL is
// ignored; retry is taken only when all ASCII digits; an empty line sets
// the last event ID from the id buffer and delivers an event only when
// there is data; an incomplete event at the end of a stream is discarded.
// feed() takes text: decode bytes with a StringDecoder (or TextDecoder with
// stream: true) so that a character split between reads stays whole.
export class SseParser {
  constructor({ onEvent, onComment = () => {}, onRetry = () => {} }) {
    this.onEvent = onEvent;
    this.onComment = onComment;
    this.onRetry = onRetry;
    this.lastEventId = ''; // the last event ID string
    this.begin();
  }

  // A new stream: pending state is dropped; the id buffer restarts from the
  // last event ID string, so an id cut off with its event is never used.
  begin() {
    this.line = '';
    this.data = '';
    this.type = '';
    this.lastId = this.lastEventId; // the last event ID buffer
    this.afterCr = false;
    this.atStart = true;
  }

  feed(text) {
    if (this.atStart && text.length > 0) {
      this.atStart = false;
      if (text[0] === '\uFEFF') text = text.slice(1);
    }
    let i = 0;
    while (i < text.length) {
      if (this.afterCr) {
        this.afterCr = false;
        if (text[i] === '\n') {
          i++;
          continue;
        }
      }
      let j = i;
      while (j < text.length && text[j] !== '\r' && text[j] !== '\n') j++;
      this.line += text.slice(i, j);
      if (j === text.length) break;
      const line = this.line;
      this.line = '';
      this.afterCr = text[j] === '\r';
      i = j + 1;
      this.processLine(line);
    }
  }

  processLine(line) {
    if (line === '') return this.dispatch();
    if (line[0] === ':') return this.onComment(line.slice(1));
    const i = line.indexOf(':');
    let field = line;
    let value = '';
    if (i >= 0) {
      field = line.slice(0, i);
      value = line.slice(i + 1);
      if (value[0] === ' ') value = value.slice(1);
    }
    if (field === 'event') this.type = value;
    else if (field === 'data') this.data += `${value}\n`;
    else if (field === 'id') {
      if (!value.includes('\0')) this.lastId = value;
    } else if (field === 'retry') {
      if (/^[0-9]+$/.test(value)) this.onRetry(Number(value));
    }
    return undefined;
  }

  dispatch() {
    this.lastEventId = this.lastId;
    if (this.data === '') {
      this.type = '';
      return;
    }
    const data = this.data.slice(0, -1);
    const ev = { id: this.lastEventId, event: this.type || 'message', data };
    this.data = '';
    this.type = '';
    this.onEvent(ev);
  }
}
