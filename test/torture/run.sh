#!/usr/bin/env bash
# Short form of the torture test for `make test` (about 2 minutes): one
# minute of publishing under every fault kind, then drain and verdict, and
# the on-disk self-check (a damaged client log must fail the verdict).
# The long form is `make torture DURATION=...` (test/torture/torture.sh).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/torture.sh" "${TORTURE_DURATION:-60}" --self-check
