// WHATWG event-stream interpretation, used to read what curl received.
// Callbacks: onEvent({id, event, data}), onComment(text), onRetry(ms).
export class SseParser {
  constructor({ onEvent, onComment = () => {}, onRetry = () => {} }) {
    this.onEvent = onEvent;
    this.onComment = onComment;
    this.onRetry = onRetry;
    this.line = '';
    this.data = '';
    this.type = '';
    this.lastId = '';
    this.afterCr = false;
    this.atStart = true;
  }

  feed(text) {
    if (this.atStart && text.length > 0) {
      this.atStart = false;
      if (text[0] === '\uFEFF') text = text.slice(1);
    }
    for (const c of text) {
      if (this.afterCr) {
        this.afterCr = false;
        if (c === '\n') continue;
      }
      if (c === '\r' || c === '\n') {
        this.processLine(this.line);
        this.line = '';
        this.afterCr = c === '\r';
      } else {
        this.line += c;
      }
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
    if (this.data === '') {
      this.type = '';
      return;
    }
    const data = this.data.endsWith('\n') ? this.data.slice(0, -1) : this.data;
    this.onEvent({ id: this.lastId, event: this.type || 'message', data });
    this.data = '';
    this.type = '';
  }
}
