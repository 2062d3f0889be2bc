"""moto's server, with its hot spots under herald's bursts made cheap. Answers stay moto's;
the changes of behaviour (2. and 5.) bring it closer to AWS.

1. DynamoDB transactions snapshot only the items they touch.

moto 5.2.5's `transact_write_items` deep-copies the whole table once per action before it
starts (for the rollback), so a 100-action transaction on a table of 10,000 items copies a
million items. Local campaigns and the burst benchmarks write thousands of items, and moto
then commits about ten notifications a second. This launcher keeps moto's own transaction code
(conditions, cancellation reasons, idempotency of keys) and replaces only its backup: each
touched item is copied before the transaction and put back if it fails.

2. DynamoDB item reads and writes take one lock, so no request sees or interleaves
with half a transaction, as on AWS (moto's threaded server otherwise runs them side by side).

3. A query on a table's own key looks at that partition's items, not at the whole table
sorted (moto sorts every item of the table for each query).

4. SQS reads the clock once per scan of a queue, not once per message (moto computes every
queue attribute, scanning all its messages, on each send and for each message received, and
each clock read builds two datetimes), and the retention check reads the one attribute it needs.

5. Connections stay open between requests (HTTP/1.1 keep-alive), as AWS's endpoints keep
them: werkzeug's development server closes every connection after one answer, because it
cannot tell where an unread request body ends. Here a body with a Content-Length is read
through a stream of that length and drained after the answer, so the next request on the
connection starts where it should; a request with a Transfer-Encoding (chunked), one that
asks for close, and http.server's own error answers still close it. Without this, every SDK
call opens a TCP connection, and its handshake and teardown (loopback and netfilter work in
the kernel) were about a third of the client's CPU in `cargo xtask bench counters`, which
AWS clients, keeping their connections, do not pay.

6. With HERALD_CALL_LOG set, every request is appended to that file as one JSON line: the
access key it was signed with (the local runner signs each function's calls with the
function's logical id), the IAM action it needs (`dynamodb:PutItem`; a transaction's item
actions; a batch as its single action) and, where the request names one, the resource (table,
queue, topic, bucket, schedule group). `cargo xtask test` holds these against each
function's role in template.yaml.

7. Chaos, off by default: with rates set (HERALD_CHAOS at start, as JSON, or at any time by
`POST /herald/chaos` with the same JSON; `GET /herald/chaos` answers the rates and what was
injected so far), a share of herald's own calls (those signed with a function's key, never
the `test` key that provisioning and inspection use) is answered as AWS answers under
load, without reaching moto: `dynamodb`, `sqs`, `ses`, `sns` give each service's throttling
error (ProvisionedThroughputExceededException, ThrottlingException, TooManyRequestsException,
Throttled); `conflict` makes a DynamoDB write meet another transaction (a
TransactWriteItems is cancelled with `TransactionConflict` reasons, a PutItem, UpdateItem or
DeleteItem answers TransactionConflictException). `seed` makes the draws repeatable, e.g.
`{"dynamodb": 0.2, "sqs": 0.1, "ses": 0.3, "sns": 0.3, "conflict": 0.2, "seed": 7}`.

8. DynamoDB Streams as DynamoDB writes them: a cancelled transaction leaves no records (moto
kept those of the items it had applied before the failing one), an update that creates its
item is one INSERT (moto recorded its keys-only put as well), and a stream read takes the item
lock, so it never sees half a transaction.

Usage: python moto_server.py [moto_server arguments], e.g. -H 127.0.0.1 -p 5000
"""

import copy
import inspect
import io
import json
import os
import random
import re
import sys
import threading
import time
import uuid
from urllib.parse import parse_qs, unquote

import moto.core.utils as core_utils
from werkzeug.exceptions import ClientDisconnected
from werkzeug.wsgi import LimitedStream

_moto_unix_time = core_utils.unix_time
_moto_unix_time_millis = core_utils.unix_time_millis


def _unix_time(dt=None):
    return time.time() if dt is None else _moto_unix_time(dt)


def _unix_time_millis(dt=None):
    return _unix_time(dt) * 1000.0


# Before any backend imports them by name.
core_utils.unix_time = _unix_time
core_utils.unix_time_millis = _unix_time_millis

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodbstreams.models import DynamoDBStreamsBackend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler
from moto.server import main
from moto.sqs.models import Queue, SQSBackend

_real_deepcopy = copy.deepcopy
_items = threading.RLock()


class _CopyWithoutTables:
    """Stands in for the `copy` module inside moto's DynamoDB backend: tables are not copied
    (the patched transaction restores items itself), everything else is."""

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, Table):
            return value
        return _real_deepcopy(value, memo)

    def __getattr__(self, name):
        return getattr(copy, name)


def _touched_key(backend, action):
    """(table, hash, range) of one transaction action, or None when it names no item."""
    op_type, op = next(iter(action.items()))
    table = backend.tables.get(op.get("TableName"))
    if table is None:
        return None
    key = op.get("Item") if op_type == "Put" else op.get("Key")
    if not isinstance(key, dict) or table.hash_key_attr not in key:
        return None
    range_value = None
    if table.range_key_attr is not None:
        if table.range_key_attr not in key:
            return None
        range_value = DynamoType(key[table.range_key_attr])
    return table, DynamoType(key[table.hash_key_attr]), range_value


def _restore(table, hash_value, range_value, item):
    if range_value is not None:
        if item is None:
            table.items[hash_value].pop(range_value, None)
        else:
            table.items[hash_value][range_value] = item
    elif item is None:
        table.items.pop(hash_value, None)
    else:
        table.items[hash_value] = item


def _locked(method):
    def run(self, *args, **kwargs):
        with _items:
            return method(self, *args, **kwargs)

    run.__name__ = method.__name__
    return run


_moto_transact_write_items = DynamoDBBackend.transact_write_items


def transact_write_items(self, transact_items):
    with _items:
        snapshots = []
        streams = {}
        for action in transact_items:
            if not isinstance(action, dict) or len(action) != 1:
                continue
            touched = _touched_key(self, action)
            if touched is not None:
                table, hash_value, range_value = touched
                current = table.get_item(hash_value, range_value)
                snapshots.append((table, hash_value, range_value, _real_deepcopy(current)))
                if table.stream_shard is not None:
                    streams.setdefault(id(table), (table.stream_shard, len(table.stream_shard.items)))
        try:
            return _moto_transact_write_items(self, transact_items)
        except BaseException:
            for snapshot in reversed(snapshots):
                _restore(*snapshot)
            # A cancelled transaction wrote nothing, so its stream shows nothing either.
            for shard, length in streams.values():
                del shard.items[length:]
            raise


_moto_update_item = DynamoDBBackend.update_item


def update_item(self, table_name, *args, **kwargs):
    """moto creates an item an update finds missing with a keys-only put, then updates it,
    so its stream shows two INSERTs where DynamoDB records one: the first is dropped."""
    shard = self.get_table(table_name).stream_shard
    before = len(shard.items) if shard is not None else 0
    item = _moto_update_item(self, table_name, *args, **kwargs)
    if shard is not None and len(shard.items) - before == 2:
        created, updated = shard.items[before], shard.items[before + 1]
        if created.record["eventName"] == "INSERT" and updated.record["eventName"] == "INSERT":
            updated.record["dynamodb"]["SequenceNumber"] = created.record["dynamodb"]["SequenceNumber"]
            del shard.items[before]
    return item


dynamodb_models.copy = _CopyWithoutTables()
DynamoDBBackend.transact_write_items = transact_write_items
DynamoDBBackend.update_item = update_item
for _name in ("put_item", "update_item", "delete_item", "get_item", "query", "scan"):
    setattr(DynamoDBBackend, _name, _locked(getattr(DynamoDBBackend, _name)))
# A stream reader never sees half a transaction (nor records a cancelled one left for an instant).
DynamoDBStreamsBackend.get_records = _locked(DynamoDBStreamsBackend.get_records)


_moto_all_items = Table.all_items
_moto_table_query = Table.query
_query_signature = inspect.signature(_moto_table_query)
_query_partition = threading.local()


def _all_items(self):
    hash_key = getattr(_query_partition, "hash_key", None)
    if hash_key is None:
        return _moto_all_items(self)
    partition = self.items.get(hash_key)
    if partition is None:
        return []
    items = list(partition.values()) if self.range_key_attr else [partition]
    return sorted(items, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)


def _query(self, *args, **kwargs):
    call = _query_signature.bind(self, *args, **kwargs)
    on_table_key = call.arguments.get("index_name") is None
    _query_partition.hash_key = call.arguments.get("hash_key") if on_table_key else None
    try:
        return _moto_table_query(self, *args, **kwargs)
    finally:
        _query_partition.hash_key = None


Table.all_items = _all_items
Table.query = _query


def _visible_messages(queue):
    now = time.time() * 1000.0
    return [m for m in queue._messages if now > m.visible_at and now >= m.delayed_until]


def _delayed_count(queue):
    now = time.time() * 1000.0
    return sum(1 for m in queue._messages if now < m.delayed_until)


def _not_visible_count(queue):
    now = time.time() * 1000.0
    return sum(1 for m in queue._messages if not now > m.visible_at)


def _within_retention(self, queue_name, message):
    retention_seconds = int(self.get_queue(queue_name).message_retention_period)
    return retention_seconds + message.sent_timestamp / 1000 > time.time()


Queue.messages = property(_visible_messages)
Queue.approximate_number_of_messages_delayed = property(_delayed_count)
Queue.approximate_number_of_messages_not_visible = property(_not_visible_count)
SQSBackend.is_message_valid_based_on_retention_period = _within_retention

_moto_make_environ = MotoRequestHandler.make_environ
_moto_run_wsgi = MotoRequestHandler.run_wsgi
_moto_send_header = MotoRequestHandler.send_header
_moto_send_error = MotoRequestHandler.send_error


class _NothingMore:
    """The connection's reader as werkzeug's after-answer drain sees it: nothing more to
    read. That drain reads everything the client sent within 10 ms, which on a kept-alive
    connection is the next request."""

    def __init__(self, reader):
        self.reader = reader

    def read(self, *_args):
        return b""

    def __getattr__(self, name):
        return getattr(self.reader, name)


_CALL_LOG = os.environ.get("HERALD_CALL_LOG")
_CALL_LOG_LOCK = threading.Lock()
# Batch APIs need the permission of the single action.
_BATCHES = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
            "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}


def _iam_calls(environ, body):
    """[(action, resource)] the request needs, as IAM names them."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scope = re.search(r"Credential=[^/]*/[^/]*/[^/]*/([^/]*)/", auth)
    service = scope.group(1) if scope else ""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    method = environ.get("REQUEST_METHOD", "")
    path = unquote(environ.get("PATH_INFO", ""))
    if target:
        operation = target.split(".")[-1]
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = {}
        prefix = {"dynamodb": "dynamodb", "sqs": "sqs", "secretsmanager": "secretsmanager"}.get(service, service)
        if operation in ("TransactWriteItems", "TransactGetItems"):
            calls = []
            for item in payload.get("TransactItems", []):
                for kind, part in item.items():
                    action = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                              "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}.get(kind, kind)
                    calls.append((f"{prefix}:{action}", part.get("TableName", "")))
            return calls
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [(f"{prefix}:{operation}", table) for table in payload.get("RequestItems", {})]
        # A stream's calls name their table through the stream's ARN (GetRecords names none).
        stream_table = re.search(r":table/([^/]+)/stream/", payload.get("StreamArn", ""))
        resource = payload.get("TableName") or payload.get("QueueUrl", "").rsplit("/", 1)[-1] \
            or payload.get("SecretId", "") or (stream_table.group(1) if stream_table else "")
        return [(f"{prefix}:{_BATCHES.get(operation, operation)}", resource)]
    if service == "sns":
        form = parse_qs((body or b"").decode("utf-8", "replace"))
        action = form.get("Action", [""])[0]
        topic = form.get("TopicArn", form.get("TargetArn", [""]))[0]
        return [(f"sns:{action}", topic)]
    if service == "ses":
        if method == "POST" and path.startswith("/v2/email/outbound-emails"):
            return [("ses:SendEmail", "")]
        return [(f"ses:{method} {path}", "")]
    if service == "scheduler":
        group = parse_qs(environ.get("QUERY_STRING", "")).get("groupName", [""])[0]
        if path.startswith("/schedules/"):
            action = {"POST": "CreateSchedule", "GET": "GetSchedule", "DELETE": "DeleteSchedule",
                      "PUT": "UpdateSchedule"}.get(method, method)
            if method in ("POST", "PUT"):
                try:
                    group = json.loads(body or b"{}").get("GroupName", group)
                except ValueError:
                    pass
            calls = [(f"scheduler:{action}", group)]
            if action == "CreateSchedule":
                calls.append(("iam:PassRole", "SchedulerRole"))
            return calls
        return [(f"scheduler:{method} {path}", group)]
    if service == "s3":
        bucket = path.lstrip("/").split("/", 1)[0]
        has_key = "/" in path.lstrip("/")
        if method in ("GET", "HEAD"):
            return [("s3:GetObject" if has_key else "s3:ListBucket", bucket)]
        if method == "PUT":
            return [("s3:PutObject", bucket)]
        return [(f"s3:{method}", bucket)]
    return [(f"{service}:{method} {path}", "")]


def _log_call(environ, body):
    """Appends the request's IAM needs to the call log."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    key = re.search(r"Credential=([^/]*)/", auth)
    if not key:
        return
    lines = [json.dumps({"key": key.group(1), "action": action, "resource": resource})
             for action, resource in _iam_calls(environ, body)]
    with _CALL_LOG_LOCK, open(_CALL_LOG, "a", encoding="utf-8") as log:
        log.write("".join(line + "\n" for line in lines))


def _make_environ(self):
    """The request body as a stream of its Content-Length, drained after the answer."""
    environ = _moto_make_environ(self)
    self.body = None
    length = environ.get("CONTENT_LENGTH", "") or "0"
    if "HTTP_TRANSFER_ENCODING" in environ or not (length.isascii() and length.isdigit()):
        # A Transfer-Encoding (chunked, say) or an unreadable length: close, as werkzeug
        # always does, rather than guess where the body ends.
        self.close_connection = True
    elif not self.close_connection:
        self.body = LimitedStream(self.rfile, int(length))
        environ["wsgi.input"] = self.body
        self.rfile = _NothingMore(self.rfile)
    if _CALL_LOG and self.body is not None:
        # Read whole (the call log needs it), handed on as a stream of the same bytes.
        data = self.body.read()
        environ["wsgi.input"] = io.BytesIO(data)
        try:
            _log_call(environ, data)
        except Exception as error:  # the log must never fail a request
            print(f"call log: {error}", file=sys.stderr)
    return environ


def _run_wsgi(self):
    self.body = None
    try:
        _moto_run_wsgi(self)
    finally:
        if isinstance(self.rfile, _NothingMore):
            self.rfile = self.rfile.reader
    if self.body is not None and not self.close_connection:
        try:
            self.body.exhaust()
        except ClientDisconnected:  # the client left mid-body: nothing more to answer
            self.close_connection = True


def _send_header(self, keyword, value):
    # werkzeug answers `Connection: close` to every request (which also ends the
    # connection); one whose connection is closing anyway (see above) still gets it.
    if keyword.lower() == "connection" and value.lower() == "close":
        if not self.close_connection:
            return
    _moto_send_header(self, keyword, value)


def _send_error(self, *args, **kwargs):
    # http.server's own errors (505, 431, ...) leave the request unread: close, as they ask.
    self.close_connection = True
    _moto_send_error(self, *args, **kwargs)


_CHAOS_LOCK = threading.Lock()
_CHAOS = {"rates": {}, "injected": {}, "random": random.Random()}
_CHAOS_KINDS = ("dynamodb", "sqs", "ses", "sns", "conflict")
_DYNAMODB_WRITES = ("PutItem", "UpdateItem", "DeleteItem")


def _set_chaos(spec):
    """Rates by kind (0 to 1) and an optional seed; anything else is an error."""
    rates = {}
    for kind, rate in spec.items():
        if kind == "seed":
            continue
        if kind not in _CHAOS_KINDS or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError(f"{kind}={rate!r}: kinds are {', '.join(_CHAOS_KINDS)}, rates 0 to 1")
        rates[kind] = float(rate)
    with _CHAOS_LOCK:
        _CHAOS["rates"] = rates
        if "seed" in spec:
            _CHAOS["random"] = random.Random(spec["seed"])


def _draw(kind):
    """Whether this call gets the fault `kind` (counted when it does)."""
    with _CHAOS_LOCK:
        rate = _CHAOS["rates"].get(kind, 0.0)
        if rate <= 0 or _CHAOS["random"].random() >= rate:
            return False
        _CHAOS["injected"][kind] = _CHAOS["injected"].get(kind, 0) + 1
        return True


def _json_error(status, error_type, message, extra=None, content_type="application/x-amz-json-1.0"):
    body = {"__type": error_type, "message": message}
    body.update(extra or {})
    return status, [("Content-Type", content_type), ("x-amzn-RequestId", str(uuid.uuid4()))], \
        json.dumps(body).encode()


def _fault(environ, body):
    """The injected answer for this request, or None to let moto answer."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    key = re.search(r"Credential=([^/]*)/[^/]*/[^/]*/([^/]*)/", auth)
    if not key or key.group(1) == "test" or not _CHAOS["rates"]:
        return None
    service = key.group(2)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    operation = target.split(".")[-1]
    if service == "dynamodb":
        if operation == "TransactWriteItems" and _draw("conflict"):
            try:
                items = len(json.loads(body or b"{}").get("TransactItems", []))
            except ValueError:
                items = 1
            reasons = [{"Code": "TransactionConflict",
                        "Message": "Transaction is ongoing for the item"}] * max(items, 1)
            return _json_error("400 Bad Request",
                               "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                               "Transaction cancelled, please refer cancellation reasons for "
                               "specific reasons [TransactionConflict] (injected)",
                               {"CancellationReasons": reasons, "Message": "Transaction cancelled (injected)"})
        if operation in _DYNAMODB_WRITES and _draw("conflict"):
            return _json_error("400 Bad Request",
                               "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
                               "Transaction is ongoing for the item (injected)")
        if _draw("dynamodb"):
            return _json_error("400 Bad Request",
                               "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                               "The level of configured provisioned throughput for the table was "
                               "exceeded (injected)")
    elif service == "sqs" and target and _draw("sqs"):
        status, headers, payload = _json_error("400 Bad Request", "com.amazonaws.sqs#ThrottlingException",
                                               "Rate exceeded (injected)")
        return status, headers + [("x-amzn-query-error", "ThrottlingException;Sender")], payload
    elif service == "ses" and environ.get("PATH_INFO", "").startswith("/v2/email/outbound-emails") \
            and _draw("ses"):
        return "429 Too Many Requests", [("Content-Type", "application/json"),
                                         ("x-amzn-ErrorType", "TooManyRequestsException"),
                                         ("x-amzn-RequestId", str(uuid.uuid4()))], \
            json.dumps({"message": "Maximum sending rate exceeded (injected)"}).encode()
    elif service == "sns" and b"Action=Publish" in (body or b"") and _draw("sns"):
        # SNS's ThrottledException: HTTP 429, code Throttled.
        xml = ('<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error>'
               "<Type>Sender</Type><Code>Throttled</Code><Message>Rate exceeded (injected)"
               f"</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")
        return "429 Too Many Requests", [("Content-Type", "text/xml")], xml.encode()
    return None


def _chaos_control(environ, start_response):
    """GET: the rates and what was injected; POST: new rates (the injected counts stay)."""
    if environ.get("REQUEST_METHOD") == "POST":
        try:
            _set_chaos(json.loads(environ["wsgi.input"].read() or b"{}"))
        except (ValueError, TypeError, AttributeError) as error:
            start_response("400 Bad Request", [("Content-Type", "application/json")])
            return [json.dumps({"error": str(error)}).encode()]
    with _CHAOS_LOCK:
        answer = {"rates": _CHAOS["rates"], "injected": _CHAOS["injected"]}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(answer).encode()]


_moto_dispatch = DomainDispatcherApplication.__call__


def _dispatch(self, environ, start_response):
    if environ.get("PATH_INFO") == "/herald/chaos":
        return _chaos_control(environ, start_response)
    if _CHAOS["rates"]:
        body = environ["wsgi.input"].read()
        environ["wsgi.input"] = io.BytesIO(body)
        fault = _fault(environ, body)
        if fault is not None:
            status, headers, payload = fault
            start_response(status, headers + [("Content-Length", str(len(payload)))])
            return [payload]
    return _moto_dispatch(self, environ, start_response)


DomainDispatcherApplication.__call__ = _dispatch
if os.environ.get("HERALD_CHAOS"):
    _set_chaos(json.loads(os.environ["HERALD_CHAOS"]))


# An answer's head and body are two writes: without this, Nagle's algorithm holds the body
# back until the client acks the head, which it delays (40 ms a request on loopback).
MotoRequestHandler.disable_nagle_algorithm = True
MotoRequestHandler.make_environ = _make_environ
MotoRequestHandler.run_wsgi = _run_wsgi
MotoRequestHandler.send_header = _send_header
MotoRequestHandler.send_error = _send_error

# Any moto module imported before the patch above holds moto's own clock functions.
for _module in list(sys.modules.values()):
    if getattr(_module, "__name__", "").startswith("moto."):
        if getattr(_module, "unix_time", None) is _moto_unix_time:
            _module.unix_time = _unix_time
        if getattr(_module, "unix_time_millis", None) is _moto_unix_time_millis:
            _module.unix_time_millis = _unix_time_millis

if __name__ == "__main__":
    main()
