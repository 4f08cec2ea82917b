"""What openapi.yaml cannot say, told to schemathesis (README "Hardening: the fuzzer").

Each rule below is a constraint that JSON Schema cannot state: between a value and the
world (a signature, the clock, an earlier request, an address's owner) or between two
fields (`min` <= `max`). A case generated as *valid* can break one and be refused, rightly;
so, for positive cases only, the values are brought inside the rule before the call.
Negative cases, and every check on every response, run exactly as generated.

`before_call` is the one hook schemathesis applies in every phase (examples included),
and it re-validates the case after it, so an edit can never turn a case's verdict.
"""

import datetime
import functools
import ipaddress
import os
import re
import urllib.parse
import uuid

import requests

import schemathesis
from schemathesis import GenerationMode


def _positive(case) -> bool:
    meta = case.meta
    return meta is None or meta.generation.mode == GenerationMode.POSITIVE


@schemathesis.hook
def before_call(context, case, kwargs):
    if not _positive(case):
        return
    # A cursor is signed and bound to its query: only a `next_cursor` aloft issued is
    # valid. A made-up one is a 400 `invalid-cursor`, tested in each capability.
    if case.query and "cursor" in case.query:
        del case.query["cursor"]
    # An Idempotency-Key replays the request first sent with it: the generator's reuse of
    # one key for another body is a 422 `idempotency-key-reused`, as documented.
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = str(uuid.uuid4())
    rule = RULES.get((case.method.upper(), case.path))
    if rule:
        rule(case)


def _body(case):
    return case.body if isinstance(case.body, dict) else None


def _search_users(case):
    # At least one filter (OpenAPI cannot require one of several query parameters).
    query = case.query if case.query is not None else {}
    if not any(k in query for k in ("email", "role", "name_prefix")):
        query["role"] = "member"
        case.query = query


def _silence(case):
    # `until` is in the future, at most 30 days ahead.
    body = _body(case)
    if body and "until" in body:
        until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        body["until"] = until.strftime("%Y-%m-%dT%H:%M:%SZ")


def _register_instance(case):
    # A service does not depend on itself (the path names it, the body cannot say so).
    body = _body(case) or {}
    service = (case.path_parameters or {}).get("service")
    if isinstance(body.get("depends_on"), list) and service is not None:
        body["depends_on"] = [d for d in body["depends_on"] if d != service]
    # A health check GETs the instance's own address, and never a loopback, private,
    # link-local or metadata one (SSRF: literals are checked at registration, names at
    # each connection). So the check's host is the address, and the address public.
    body = _body(case) or {}
    check = body.get("check")
    if not isinstance(check, dict) or not isinstance(check.get("http"), str):
        return
    address = body.get("address")
    if not isinstance(address, str):
        return
    if not _is_public_name_or_address(address):
        address = body["address"] = "93.184.216.34"
    url = urllib.parse.urlsplit(check["http"])
    host = f"[{address.strip('[]')}]" if ":" in address else address
    try:
        port = url.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port else "")
    check["http"] = urllib.parse.urlunsplit(url._replace(netloc=netloc))


def _is_public_name_or_address(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.rstrip(".").lower()
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        pass
    # The spec's address pattern also admits strings no URL takes as a host (`a[`).
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*", host):
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return False
    # A name whose last label is a number is an IPv4 address to a URL parser (WHATWG:
    # `0000`, `1.2.3`, `0x7f.1`), judged by its value: never take it for a public name.
    last = host.rsplit(".", 1)[-1]
    return not (last.isdigit() or (last.startswith("0x") and all(c in "0123456789abcdef" for c in last[2:])))


def _int(v):
    """A JSON integer as schemathesis may write it (`249.0`)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def _api(method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(
        method,
        os.environ["ALOFT_URL"] + path,
        headers={"Authorization": "Bearer " + os.environ["ALOFT_ADMIN_KEY"]},
        timeout=30,
        **kwargs,
    )


def _a_user_id() -> str:
    """A user made for this case through the API (the fuzzer may delete any earlier one)."""
    email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
    response = _api("POST", "/users", json={"email": email, "name": "Fuzz", "role": "member"})
    response.raise_for_status()
    return response.json()["id"]


@functools.cache
def _currencies_by_method() -> dict:
    """`GET /payment-methods`: which currencies each method takes in this deployment."""
    response = _api("GET", "/payment-methods")
    response.raise_for_status()
    listed = {}
    for entry in response.json()["items"]:
        listed.setdefault(entry["method"], []).extend(entry["currencies"])
    # Cards are listed per brand (the number decides it): a card payment's currency is
    # one every brand takes.
    brands = [set(c) for m, c in listed.items() if not m.startswith("paypal")]
    if brands:
        listed["card"] = sorted(set.intersection(*brands))
    return listed


def _payment(case):
    body = _body(case)
    if not body:
        return
    # A payment is for a user that exists (a 422 naming `user_id` otherwise).
    if isinstance(body.get("user_id"), str):
        body["user_id"] = _a_user_id()
    # In a currency its method's processor takes here (configuration, listed by
    # `GET /payment-methods`; a 422 naming `currency` otherwise).
    method = body.get("method")
    kind = method.get("type") if isinstance(method, dict) else None
    available = _currencies_by_method().get(kind)
    if available and body.get("currency") not in available:
        body["currency"] = available[0]
    # A card number that passes Luhn's check and names a brand, with that brand's CVC
    # length, and that has not expired.
    card = method.get("card") if isinstance(method, dict) else None
    if isinstance(card, dict):
        if isinstance(card.get("number"), str):
            card["number"] = "4242 4242 4242 4242"
            card["cvc"] = "123"
        today = datetime.date.today()
        year, month = _int(card.get("exp_year")), _int(card.get("exp_month"))
        if year is not None and month is not None and (year, month) < (today.year, today.month):
            card["exp_year"] = today.year + 3


def _objective(case):
    body = _body(case)
    if not body:
        return
    # `warning` on the good side of `critical`.
    warning, critical = body.get("warning"), body.get("critical")
    if isinstance(warning, (int, float)) and isinstance(critical, (int, float)):
        natural = "less_than" if body.get("metric") in ("availability", "throughput") else "greater_than"
        if body.get("comparison", natural) == "greater_than":
            body["warning"], body["critical"] = min(warning, critical), max(warning, critical)
        else:
            body["warning"], body["critical"] = max(warning, critical), min(warning, critical)
    # N × period at most a day; M at most N.
    period = _int(body.get("period_seconds", 60))
    periods = _int(body.get("evaluation_periods", 3))
    if period and periods and period * periods > 86400:
        periods = max(1, 86400 // period)
        body["evaluation_periods"] = periods
    m = _int(body.get("datapoints_to_alarm"))
    if m is not None and periods and m > periods:
        body["datapoints_to_alarm"] = periods


def _scaling_policy(case):
    body = _body(case)
    if not body:
        return
    lo, hi = _int(body.get("min")), _int(body.get("max"))
    if lo is not None and hi is not None and lo > hi:
        body["min"], body["max"] = hi, lo
    lo = _int(body.get("min", 1)) or 1
    hi = _int(body.get("max", max(10, lo))) or max(10, lo)
    fallback = _int(body.get("fallback_instances"))
    if fallback is not None:
        body["fallback_instances"] = min(max(fallback, lo), hi)
    metrics = body.get("metrics")
    if isinstance(metrics, list):
        seen, kept = set(), []
        for m in metrics:
            if not isinstance(m, dict) or m.get("metric") in seen:
                continue
            seen.add(m.get("metric"))
            # `scale_down_below` is under `target`.
            below, target = m.get("scale_down_below"), m.get("target")
            if isinstance(below, (int, float)) and isinstance(target, (int, float)) and below >= target:
                m["scale_down_below"] = target / 2
            kept.append(m)
        body["metrics"] = kept


def _refund(case):
    # At most what is left to refund of the payment (a 422 naming `amount` otherwise).
    body = _body(case)
    amount = _int(body.get("amount")) if body else None
    payment_id = (case.path_parameters or {}).get("id")
    if amount is None or not isinstance(payment_id, str):
        return
    response = _api("GET", "/payments/" + urllib.parse.quote(payment_id, safe=""))
    if response.status_code == 200:
        payment = response.json()
        left = payment["amount"] - payment["amount_refunded"]
        if left >= 1:
            body["amount"] = min(amount, left)


def _webhook(case):
    # Not a rule of the API, a courtesy to the stack under test: a subscription the
    # fuzzer makes listens to an event type nothing emits. Otherwise every later event is
    # delivered, four attempts each, to hundreds of made-up URLs, and the local DynamoDB
    # spends the run on that. `POST /webhooks/{id}/test` still delivers to each.
    body = _body(case)
    if body and isinstance(body.get("event_types"), list):
        body["event_types"] = ["fuzz.never_emitted"]


RULES = {
    ("GET", "/users"): _search_users,
    ("POST", "/silences"): _silence,
    ("POST", "/payments"): _payment,
    ("POST", "/payments/{id}/refunds"): _refund,
    ("POST", "/services/{service}/instances"): _register_instance,
    ("PUT", "/services/{service}/objectives/{name}"): _objective,
    ("PUT", "/services/{service}/scaling-policy"): _scaling_policy,
    ("POST", "/webhooks"): _webhook,
    ("PATCH", "/webhooks/{id}"): _webhook,
}
