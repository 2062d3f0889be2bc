"""herald's contract test: schemathesis hooks (run by `cargo xtask contract`).

The spec states every constraint a schema can state. These checks hold the server to the few
it cannot, each narrowly:
- values only herald mints (a list's `cursor`, an unsubscribe `token`): a made-up one that
  fits the pattern is still a 400 naming that field;
- `send_at` more than a minute in the past (time-relative), an `audience.s3` outside the
  tenant's prefix of the stack's bucket (tenant-relative): a 400 naming that field;
- half of `quiet_hours` in a PATCH when the stored contact has not the other half (it is
  merged onto the stored contact): a 400 naming the missing half;
- the Pinpoint import's lines (NDJSON in Pinpoint's export format), which a schema sees as
  text: a body with nothing importable is a 400;
- an audience file's upload is bytes: a body the spec's string schema calls the wrong type (an
  object or a number, serialized as text) is a file all the same, and stored;
- `If-Match` naming another version: a 412 (the request is valid; the version is stale);
- `POST /v1/notifications` checks each item on its own: an invalid item is listed in
  `rejected` of a 202, and only a request whose envelope or every item is invalid is a 400;
- a workflow's rules across its steps (each channel once, inbox first and at once, delays
  never shorter than the step before, `unless: read` needs an inbox step) and a named
  workflow the tenant never defined; one frequency cap per category and channel; a digest
  on an inbox-only notification or beside a workflow: a 400 (or a rejected item) naming the
  step, the workflow, the digest or the cap.
"""

import json
import re

import schemathesis
from hypothesis.internal import lambda_sources
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

# CPython 3.11 before 3.11.9 can fail `ast.parse` deep in a stack with "SystemError: AST
# constructor recursion depth mismatch" (CPython gh-106905). Hypothesis parses source only to
# describe a lambda in its reports, so a description it cannot make falls back to the one it
# uses when confused; without this, the bug fails a random operation now and then.
_describe_lambda = lambda_sources._lambda_description


def _lambda_description(f, *args, **kwargs):
    try:
        return _describe_lambda(f, *args, **kwargs)
    except SystemError:
        return "lambda: <unknown>"


lambda_sources._lambda_description = _lambda_description

# Moto-era content type of the Pinpoint import body: a JSON line each, sent as text.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")

# (operationId or "*", the field a 400 names) that no schema can decide.
SEMANTIC_400 = {
    ("*", "cursor"),
    ("unsubscribePage", "token"),
    ("unsubscribe", "token"),
    ("createCampaign", "send_at"),
    ("createCampaign", "audience.s3"),
    # Stored-state relative: half of quiet_hours merges onto the stored other half.
    ("patchContact", "quiet_hours.start"),
    ("patchContact", "quiet_hours.end"),
}
# The Pinpoint import's body is NDJSON in Pinpoint's export format, checked line by line (a
# body with nothing importable is a 400 naming its first bad line): a schema states only that
# it is text. Its one parameter, first_line, is the spec's to judge.
LINE_CHECKED = {"importContacts"}
# Rules across a list's entries, and names only the tenant's own state can decide: the
# field a refusal names matches one of these (the whole field, per operation).
SEMANTIC_FIELDS = {
    "putWorkflow": re.compile(r"steps(\[\d+\]\.(channel|delay_seconds|unless|digest))?"),
    "putFrequencyCaps": re.compile(r"caps\[\d+\]"),
    # A digest needs an outside channel and no workflow: rules across fields.
    "sendNotifications": re.compile(
        r"notifications\[\d+\]\.(digest|workflow(\.steps(\[\d+\]\.(channel|delay_seconds|unless|digest))?)?)"
    ),
}


def semantic(op, field):
    pattern = SEMANTIC_FIELDS.get(op)
    return pattern is not None and field is not None and pattern.fullmatch(field) is not None
ACCEPTED = {401, 403, 404, 409, 429}


def operation_id(case):
    return case.operation.definition.raw.get("operationId", "")


def error_field(response):
    try:
        return (response.json().get("error") or {}).get("field")
    except (ValueError, AttributeError):
        return None


def mode(case):
    meta = case.meta
    return meta.generation.mode if meta is not None else None


def body_mode(case):
    """Whether this case made its body invalid (a negative case may break only a header)."""
    meta = case.meta
    info = meta.components.get(ParameterLocation.BODY) if meta is not None else None
    return info.mode if info is not None else None


@schemathesis.check
def valid_requests_are_accepted(ctx, response, case):
    """positive_data_acceptance, with the semantic refusals above allowed by name."""
    if mode(case) != GenerationMode.POSITIVE:
        return None
    status = response.status_code
    op = operation_id(case)
    if status < 400 or status in ACCEPTED or status >= 500:
        return None  # 5xx: not_a_server_error's to report
    if status == 412 and "If-Match" in (case.headers or {}):
        return None
    if status == 400:
        field = error_field(response)
        if ("*", field) in SEMANTIC_400 or (op, field) in SEMANTIC_400:
            return None
        if op in LINE_CHECKED and field != "first_line":
            return None
        if semantic(op, field):
            return None
    if op == "sendNotifications" and status == 400:
        raise AssertionError(f"a valid request was refused: {response.text[:300]}")
    raise AssertionError(
        f"{op}: a request the spec allows was refused with {status}: {response.text[:300]}"
    )


@schemathesis.check
def notifications_are_checked_item_by_item(ctx, response, case):
    """POST /v1/notifications: a 202 accepts every valid item and lists every invalid one.

    Stands in for negative_data_rejection on this operation (turned off for it in
    schemathesis.toml): a request the spec forbids may be a 202 only when it says which
    items it refused.
    """
    if operation_id(case) != "sendNotifications" or response.status_code != 202:
        return None
    rejected = response.json().get("rejected", [])
    unexplained = [
        r for r in rejected if not semantic(operation_id(case), (r.get("error") or {}).get("field"))
    ]
    if mode(case) == GenerationMode.POSITIVE and unexplained:
        raise AssertionError(f"valid items were rejected: {json.dumps(rejected)[:300]}")
    if body_mode(case) == GenerationMode.NEGATIVE and not rejected:
        raise AssertionError("a body the spec forbids was accepted whole (202, nothing rejected)")
    return None


@schemathesis.check
def audience_uploads_are_bytes(ctx, response, case):
    """POST /v1/audiences: stands in for negative_data_rejection (turned off for it in
    schemathesis.toml). A file is bytes, so a body of the "wrong type" is a file all the
    same; what a stored upload must have is what the spec says of the rest: a name of its
    pattern and length, and a text media type (parameters the spec does not name are
    ignored, as on every route)."""
    if operation_id(case) != "uploadAudience" or response.status_code >= 400:
        return None
    name = (case.query or {}).get("name")
    name_ok = name is None or (
        isinstance(name, str)
        and len(name) <= 100
        and re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", name) is not None
    )
    media = (case.media_type or "").split(";")[0].strip().lower()
    if name_ok and media in ("text/csv", "text/plain"):
        return None
    raise AssertionError(
        f"an upload the spec forbids was stored ({response.status_code}, name {name!r}, "
        f"{media}): {response.text[:300]}"
    )
