#!/usr/bin/env python3
"""test/topology/verdict.py CLIENTS.json LOG.tsv SUBS.tsv VERSIONS.tsv

Compare what every client of test/topology got with the log, row by row.
LOG: id, channel, data of every event; SUBS: uuid, sid, start_id;
VERSIONS: sid, from_id, channels (a PostgreSQL array), state.  A client of
an ad hoc stream expects every row of its pattern after the position its
first connection started at; a client of a subscription every row after
the subscription's creation marker that the definition valid at the row's
id (the version with the greatest from_id below it) lets through.  Both
up to the row "end".  Prints the totals and exits 1 unless
lost = duplicated = reordered = wrong = reset = 0 for every client.
"""
import json
import sys
import urllib.parse

clients = json.load(open(sys.argv[1]))
log = []
for line in open(sys.argv[2]):
    i, ch, data = line.rstrip('\n').split('\t', 2)
    log.append((int(i), ch, data))
subs = {}
for line in open(sys.argv[3]):
    u, sid, start = line.rstrip('\n').split('\t')
    subs[u] = (int(sid), int(start))
versions = {}
for line in open(sys.argv[4]):
    sid, frm, chans, state = line.rstrip('\n').split('\t')
    versions.setdefault(int(sid), []).append((int(frm), chans.strip('{}').split(','), state))


def matches(pattern, channel):
    p, c = pattern.split('.'), channel.split('.')
    for k, seg in enumerate(p):
        if seg == '#':
            return True
        if k >= len(c) or (seg != '*' and seg != c[k]):
            return False
    return len(p) == len(c)


end = min(i for i, ch, d in log if d == 'end')
total = dict(clients=len(clients), events=0, lost=0, duplicated=0, reordered=0, wrong=0, reset=0)
bad = False
for n, c in enumerate(clients):
    path = c['path']
    if path.startswith('/events/'):
        sid, start = subs[path.split('/')[2]]
        vs = sorted(versions[sid])

        def want(i, ch):
            v = [x for x in vs if x[0] < i]
            return bool(v) and v[-1][2] == 'active' and ch in v[-1][1]
    else:
        pat = urllib.parse.parse_qs(urllib.parse.urlparse(path).query)['channel'][0]
        start = int(c['start'].split('-')[0]) if c['start'] else 0

        def want(i, ch, pat=pat):
            return matches(pat, ch)
    expect = [(i, d) for i, ch, d in log if start < i <= end and ch != '$sub' and want(i, ch)]
    got = [(int(i.split('-')[0]), d) for i, d in c['got']]
    ids = [i for i, _ in got]
    seen = set(ids)
    rows = dict(expect)
    lost = len([i for i, _ in expect if i not in seen])
    dup = len(ids) - len(seen)
    reord = sum(1 for a, b in zip(ids, ids[1:]) if b < a)
    wrong = sum(1 for i, d in got if rows.get(i) != d)
    resets = len(c['other'])
    total['events'] += len(got)
    for k, v in (('lost', lost), ('duplicated', dup), ('reordered', reord), ('wrong', wrong), ('reset', resets)):
        total[k] += v
    if lost or dup or reord or wrong or resets or not c['done']:
        bad = True
        print(f'client {n} {path}: got {len(got)} of {len(expect)}: lost {lost} duplicated {dup} '
              f'reordered {reord} wrong {wrong} other events {c["other"][:3]} done {c["done"]}')
        missing = [i for i, _ in expect if i not in seen][:10]
        print(f'  first missing ids {missing}; statuses {c["statuses"]}')
    print(f'client {n} {path}: {len(got)} events over {c["opens"]} connections, statuses {c["statuses"]}')
print('verdict: ' + ', '.join(f'{k} {v}' for k, v in total.items()))
sys.exit(1 if bad else 0)
