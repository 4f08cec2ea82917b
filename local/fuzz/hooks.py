"""What openapi.yaml cannot say, told to schemathesis (README "Hardening: the fuzzer").

Each rule below is a constraint between a value and the world (a signature, the clock,
an earlier request), not a shape: JSON Schema cannot state it, so a case generated as
*valid* could break it and be refused, rightly. Only positive cases are adjusted; the
negative ones (and the checks on every response) run as generated.
"""

import datetime
import uuid

import schemathesis
from schemathesis import GenerationMode


def _positive(case) -> bool:
    meta = case.meta
    return meta is None or meta.generation.mode == GenerationMode.POSITIVE


@schemathesis.hook
def map_case(context, case):
    if not _positive(case):
        return case
    # A cursor is signed and bound to its query: only a `next_cursor` aloft issued is
    # valid, and a made-up one is a 400 `invalid-cursor` (tested in each capability).
    if case.query and "cursor" in case.query:
        del case.query["cursor"]
    # An Idempotency-Key replays the request first sent with it: a generated key reused
    # with another body is a 422 `idempotency-key-reused`, as documented.
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = str(uuid.uuid4())
    body = case.body if isinstance(case.body, dict) else None
    # A silence ends in the future (at most 30 days ahead).
    if case.path == "/silences" and case.method == "POST" and body and "until" in body:
        until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        body["until"] = until.strftime("%Y-%m-%dT%H:%M:%SZ")
    return case
