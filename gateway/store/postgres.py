"""The shared store: PostgreSQL through an asyncpg pool, for several gateways on one database.

URL: ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE?OPTIONS`` (``postgres://`` too; several
``HOST:PORT`` pairs separated by commas for failover, with ``target_session_attrs=read-write``).
Options of this store (everything else is refused, except the libpq-style connection options
asyncpg understands: ``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``, ``sslcrl``,
``sslpassword``, ``ssl_min_protocol_version``, ``ssl_max_protocol_version``,
``target_session_attrs``, ``passfile``, ``service``):

=====================================  ========  ============================================
``statement_timeout_ms``               5000      server-side limit per statement (0: none)
``idle_in_transaction_timeout_ms``     60000     a session idle inside a transaction is ended
``connect_timeout_ms``                 5000      opening one connection
``acquire_timeout_ms``                 5000      waiting for a free pooled connection
``statement_cache_size``               100       asyncpg's prepared statements per connection;
                                                 0 behind PgBouncer in transaction mode
``pool_min_size`` / ``pool_max_size``  1 / 10    connections per store (per process)
``schema``                             (none)    put every table in this schema (created when
                                                 missing; it becomes the ``search_path``)
``application_name``                   stopgate  shown in ``pg_stat_activity``
=====================================  ========  ============================================

The statement timeout is also enforced on the client (plus 2 s), for a network that stops
answering. Migrations run on a connection of their own without either timeout.

Semantics are those of the SQLite store, method by method (see :mod:`gateway.store.base`):

- One transaction per unit of work. Every transaction that writes consent, history, the outbox
  or the change log first locks the one row of ``clock`` (``SELECT … FOR UPDATE``) and advances
  it before it commits. Live writes are stamped ``max(now, last + 1)`` where *now* is the
  database server's clock, so gateways on several hosts stamp on one time base and never stamp
  equal or decreasing times. The same lock orders those transactions, so identity values in
  ``consent_history``, ``outbox`` and ``change_log`` become visible in increasing order: a
  reader paging by id (history, the change feed) never skips a row that commits later with a
  smaller id. Under the lock each transaction reads the current records (a statement started
  after the lock sees every earlier holder's commit, even in READ COMMITTED), decides with
  :func:`policy.consent.supersedes` in Python - the same code as SQLite - and writes what applied
  in one statement (data-modifying CTEs over ``unnest`` arrays).
- Bulk: an :meth:`PostgresStore.apply` with at least ``BULK_COPY_MIN`` applied changes (an
  import batch) writes its history with binary ``COPY`` straight into ``consent_history``, and
  the records of pairs that had none with ``COPY`` straight into ``consent`` (safe: every consent
  writer holds the clock lock, so a pair absent when read under it is still absent); records
  that replace existing ones go through the one-statement upsert. The decision per change stays
  the row-by-row one (duplicates in a batch, exact ties to OptOut, history with the previous
  status), so results are identical. :meth:`PostgresStore.import_changes` (the CLI import) goes
  further for a batch whose pairs are distinct and whose changes all carry their time: no
  change's outcome then depends on another's, so each is decided against the record read under
  the lock alone (:func:`policy.consent.supersedes`) and the batch is written column by column,
  without a record or result object per change; it answers with counts.
- Migrations are versioned in ``schema_migrations``; :meth:`PostgresStore.open` applies the
  missing ones in one transaction under ``pg_advisory_xact_lock``, so processes starting together
  migrate once and the others wait, then find the schema current. DDL is transactional: a failed
  migration leaves the previous version intact.
- Retries (3 attempts, short backoff) only for transient errors - serialization failure,
  deadlock, a lost or refused connection, a server shutting down or starting, a stale prepared
  statement, a read-only server after failover - and only when safe: reads always; writes when
  the failure came before COMMIT was sent or as a server error reply to it (then the transaction
  did not commit). A connection lost while COMMIT was in flight leaves the outcome unknown: that
  is reported (:class:`StoreUnavailable`), never retried, except for the idempotent writes
  (footer mark, service numbers, named values, heartbeats). Every driver and OS error leaves this
  module as :class:`StoreUnavailable`.
- Keys are ``text COLLATE "C"``: byte order, as SQLite compares, for keyset paging.
- SQL is module constants with ``$n`` parameters; the filtered listings (records, history,
  blocked log) are assembled from fixed fragments, one statement text per set of filters given.
  Reads are single statements outside an explicit transaction.
- Differences from SQLite: PostgreSQL ``text`` cannot hold U+0000, so a value containing it
  fails (as :class:`StoreUnavailable`); blocked-send log inserts do not take the clock lock (they
  are on the send path), so their ids may become visible slightly out of order.

Running at scale
----------------
*Stateless gateways, one primary.* Gateways keep nothing but caches; PostgreSQL is the truth.
Every write, and every consent read that decides a send (the cache-miss read of
:meth:`get_records`, and every read while the change feed is lost), must go to the primary, as
must the inbound dedupe and outbox claims. An asynchronous replica lags by milliseconds to
minutes: a send checked there after an acknowledged STOP would be forwarded, breaking the
100 ms cross-gateway bound. Replicas are fine for what decides no send: exports, history, the
blocked log, the console, analytics (a second store URL pointing at a replica). With a
multi-host URL and ``target_session_attrs=read-write`` a failover lands on the new primary;
writes that hit a demoted server fail with ``read_only_sql_transaction``, which is retried after
the pool is recycled.

*Billions of pairs.* One pair row is ~100 bytes plus ~60 in the primary key: 10^9 pairs are
~150-200 GB before history. Partition ``consent`` (and ``footer_sent``) by ``PARTITION BY HASH
(to_key)`` into 64-256 partitions: the primary key ``(to_key, from_key)`` contains the partition
key, so uniqueness and ``ON CONFLICT`` keep working per partition; every send-path read and every
write names ``to_key = $1`` and touches one partition (plan-time pruning for custom plans,
run-time pruning for generic ones); vacuum, index rebuilds and a backfill work one partition at a
time; and only a full export walks them all (a Merge Append over the partitions' primary keys,
still in key order). ``consent_history`` and ``blocked_send`` grow with every change and every
refusal: range-partition them by time (``modified_us`` / ``at_us``, monthly) so retention
(:meth:`prune`) drops whole partitions instead of deleting rows, with a ``(to_key)`` index per
partition for erasure. Partitioning is a future migration here (these tables are plain today);
none of the SQL changes for it. ``outbox`` and ``inbound_message`` stay small if done entries and
old message ids are pruned. The one serialisation point is the clock row: each consent-writing
transaction holds it until its commit, i.e. one commit latency (~0.5-2 ms with a local fsync,
more with synchronous replication), so ~500-2000 such transactions/s - far above any STOP rate
(10^9 customers opting out at 1 %/year is 0.3/s) and imports write 1000 changes per
transaction through COPY. If that ever binds, split the clock per hash partition of ``to_key``
(newest-wins only needs order per pair) and feed caches from logical decoding, which is commit
ordered, instead of identity order.

*Connection pooling.* Gateways x workers x ``pool_max_size`` connections outgrow
``max_connections`` quickly: put PgBouncer in transaction mode between them and PostgreSQL, and
set ``statement_cache_size=0`` (asyncpg's cached statements are named prepared statements living
in one server session that the next transaction may not get; PgBouncer >= 1.21 with
``max_prepared_statements`` can keep them, then the cache may stay on). Everything here is
transaction-mode safe: one transaction per unit of work, transaction-scoped advisory locks,
no session state. PgBouncer refuses startup parameters it
does not know: give ``statement_timeout_ms=0&idle_in_transaction_timeout_ms=0`` (and no
``schema``) in the URL and set them on the role instead (``ALTER ROLE stopgate SET
statement_timeout = '5s'``, ``… SET search_path = …``), or list them in
``ignore_startup_parameters`` (which drops them: set them on the role then too). A ``LISTEN``
needs a session of its own: the change-feed listener connects to PostgreSQL directly (or through
a session-mode pool), never through the transaction-mode one. Reads keep up to
``pool_max_size // 2`` of the pool's connections out of it between reads (taken as concurrent
reads need them; asyncpg's acquire and release cost more CPU than a primary-key lookup); they
still count against ``pool_max_size``, and the other half stays free for writes.

*What the change feed costs.* ``NOTIFY`` is delivered to every listening session (one per
gateway process), so each notification costs N deliveries and N cache invalidations; payloads are
at most 8000 bytes; notifications pass through one shared queue (8 GB) whose tail is held by the
slowest listener - a stuck listener fills it and then notifying transactions fail at commit, so
listeners must be watched (``pg_notification_queue_usage()``). Committing a notifying transaction
takes a database-wide lock, which costs nothing extra here (consent writes are serialised on the
clock row anyway). Per-pair notifications are cheap at STOP rates (tens per second x N
gateways). A bulk write must not notify once per row: a batch bigger than ``CHANGE_LOG_BULK``
pairs records one "flush all" epoch instead. A flush empties every gateway's cache at once, and
the refill is a burst of primary-key reads on the primary (e.g. 50 gateways x 5,000 misses/s =
250,000 single-partition lookups/s until the caches are warm): run big imports off-peak. The
polled ``change_log`` (each gateway asks for entries after its cursor every 20 ms: 50 gateways
make 2,500 tiny index-range reads/s) works through PgBouncer and needs no session; a ``LISTEN``
can wake the poller early.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from gateway.errors import StoreUnavailable
from gateway.store.base import (
    DAY_US,
    AppliedChange,
    BlockedQuery,
    BlockedSend,
    ChangeBatch,
    ConsentChange,
    ConsoleSession,
    DailyActivity,
    FollowUp,
    HistoryEntry,
    ImportCounts,
    InboundOutcome,
    OutboxEntry,
    OutboxItem,
    PairCursor,
    RecordQuery,
    ReviewEntry,
    SendSlotRequest,
    SuppressionList,
    SuppressionRefresh,
)
from policy.consent import (
    ConsentRecord,
    OptStatus,
    Source,
    Suppression,
    SuppressionKind,
    supersedes,
)
from policy.frequency_caps import Cap, admits

T = TypeVar("T")
log = logging.getLogger("stopgate.store.postgres")

# ---------------------------------------------------------------------------------------------
# Schema

MIGRATIONS: tuple[str, ...] = (
    # 1: consent, history, blocked log, footer state, services, clock, inbound, outbox, values.
    """
    CREATE TABLE consent (
        to_key text COLLATE "C" NOT NULL,
        from_key text COLLATE "C" NOT NULL,
        status text NOT NULL CHECK (status IN ('OptIn', 'OptOut')),
        source text NOT NULL,
        modified_us bigint NOT NULL,
        note text,
        evidence text,
        PRIMARY KEY (to_key, from_key)
    );
    CREATE TABLE consent_history (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        from_key text COLLATE "C" NOT NULL,
        to_key text COLLATE "C" NOT NULL,
        old_status text,
        new_status text,
        source text NOT NULL,
        actor text NOT NULL,
        modified_us bigint NOT NULL,
        note text,
        evidence text
    );
    CREATE INDEX consent_history_to ON consent_history (to_key, id);
    CREATE TABLE blocked_send (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at_us bigint NOT NULL,
        dialect text NOT NULL,
        from_key text COLLATE "C" NOT NULL,
        to_key text COLLATE "C" NOT NULL,
        reason text NOT NULL,
        request_id text NOT NULL,
        text_length integer NOT NULL,
        text_sha256 text NOT NULL,
        text text
    );
    CREATE INDEX blocked_send_at ON blocked_send (at_us);
    CREATE INDEX blocked_send_to ON blocked_send (to_key, id);
    CREATE TABLE footer_sent (
        to_key text COLLATE "C" NOT NULL,
        from_key text COLLATE "C" NOT NULL,
        PRIMARY KEY (to_key, from_key)
    );
    CREATE TABLE service_number (
        number_key text COLLATE "C" PRIMARY KEY,
        service_key text COLLATE "C" NOT NULL
    );
    CREATE TABLE clock (
        id integer PRIMARY KEY CHECK (id = 1),
        last_us bigint NOT NULL
    );
    INSERT INTO clock (id, last_us) VALUES (1, 0);
    CREATE TABLE inbound_message (
        provider text NOT NULL,
        message_id text NOT NULL,
        received_us bigint NOT NULL,
        PRIMARY KEY (provider, message_id)
    );
    CREATE TABLE outbox (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        kind text NOT NULL,
        payload text NOT NULL,
        created_us bigint NOT NULL,
        not_before_us bigint NOT NULL,
        deadline_us bigint,
        attempts integer NOT NULL DEFAULT 0,
        lease_until_us bigint NOT NULL DEFAULT 0,
        lease_owner text,
        ordering_key text,
        in_flight boolean NOT NULL DEFAULT false,
        state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'given-up')),
        last_error text
    );
    CREATE INDEX outbox_pending ON outbox (id) WHERE state = 'pending';
    CREATE INDEX outbox_queue ON outbox (ordering_key, id) WHERE state = 'pending';
    CREATE TABLE outbox_worker (
        owner text PRIMARY KEY,
        heartbeat_us bigint NOT NULL
    );
    CREATE TABLE setting (
        name text PRIMARY KEY,
        value text NOT NULL
    );
    """,
    # 2: the change feed other processes follow to keep their caches coherent.
    """
    CREATE TABLE change_log (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at_us bigint NOT NULL,
        kind text NOT NULL CHECK (kind IN ('pair', 'all', 'services')),
        from_key text COLLATE "C",
        to_key text COLLATE "C"
    );
    CREATE INDEX change_log_at ON change_log (at_us);
    INSERT INTO change_log (at_us, kind) VALUES (0, 'all');
    """,
    # 3: the compliance console: log filters, the daily chart, sessions.
    """
    CREATE INDEX blocked_send_from ON blocked_send (from_key, id);
    CREATE INDEX consent_history_time ON consent_history (modified_us);
    CREATE TABLE console_session (
        id_hash text PRIMARY KEY,
        name text NOT NULL,
        role text NOT NULL,
        csrf_token text NOT NULL,
        created_us bigint NOT NULL,
        expires_us bigint NOT NULL
    );
    CREATE INDEX console_session_expiry ON console_session (expires_us);
    """,
    # 4: every change-log write wakes the gateways' feeds at commit (LISTEN/NOTIFY); the payload
    # is the schema, so stores sharing a database in different schemas wake only their own.
    """
    CREATE FUNCTION stopgate_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('stopgate_changes', TG_TABLE_SCHEMA);
        RETURN NULL;
    END $$;
    CREATE TRIGGER change_log_notify AFTER INSERT ON change_log
        FOR EACH STATEMENT EXECUTE FUNCTION stopgate_notify_change();
    """,
    # 5: frequency caps: the marketing sends counted per recipient.
    """
    CREATE TABLE send_slot (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        to_key text COLLATE "C" NOT NULL,
        at_us bigint NOT NULL
    );
    CREATE INDEX send_slot_to ON send_slot (to_key, at_us);
    """,
    # 6: suppression lists; a list's members are replaced by publishing a staged generation.
    """
    CREATE TABLE suppression_list (
        name text COLLATE "C" PRIMARY KEY,
        kind text NOT NULL CHECK (kind IN ('internal', 'dnc', 'reassigned')),
        listed_us bigint NOT NULL,
        imported_us bigint NOT NULL,
        members bigint NOT NULL,
        note text,
        generation bigint NOT NULL
    );
    CREATE TABLE suppression (
        to_key text COLLATE "C" NOT NULL,
        list_name text COLLATE "C" NOT NULL,
        generation bigint NOT NULL,
        PRIMARY KEY (to_key, list_name, generation)
    );
    CREATE INDEX suppression_members ON suppression (list_name, generation, to_key);
    """,
    # 7: inbound messages the plain-language classifier found unclear, for compliance review.
    """
    CREATE TABLE review (
        id bigserial PRIMARY KEY,
        created_us bigint NOT NULL,
        provider text NOT NULL,
        message_id text NOT NULL,
        from_key text NOT NULL,
        to_key text NOT NULL,
        text text NOT NULL,
        rule text NOT NULL,
        explanation text NOT NULL,
        language text NOT NULL,
        clarified boolean NOT NULL,
        status text NOT NULL DEFAULT 'open'
            CHECK (status IN ('open', 'opted-out', 'dismissed')),
        resolved_us bigint,
        resolved_by text,
        UNIQUE (provider, message_id)
    );
    CREATE INDEX review_pair ON review (to_key, from_key, created_us);
    CREATE INDEX review_status ON review (status, id);
    """,
    # 8: the pending outbox in the order its entries fall due: a claim reads the first few it
    # may take, however many wait behind them or are not due yet.
    """
    CREATE INDEX outbox_pending_due ON outbox (not_before_us, id) WHERE state = 'pending';
    DROP INDEX outbox_pending;
    """,
    # 9: the entries of no ordered queue apart: a claim reads the first free entries in due
    # order and each ordered queue's head (outbox_queue), never the entries behind a head.
    """
    CREATE INDEX outbox_pending_free ON outbox (not_before_us, id)
        WHERE state = 'pending' AND ordering_key IS NULL;
    DROP INDEX outbox_pending_due;
    """,
)

NOTIFY_CHANNEL = "stopgate_changes"
CURRENT_SCHEMA = "SELECT current_schema()"

MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('stopgate.migrate'), hashtext($1))"
MIGRATION_NO_TIMEOUT = "SET LOCAL statement_timeout = 0"
SCHEMA_EXISTS = "SELECT 1 FROM pg_namespace WHERE nspname = $1"
CREATE_MIGRATIONS_TABLE = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY,
        applied_at timestamptz NOT NULL DEFAULT now()
    )
"""
SCHEMA_VERSION = "SELECT coalesce(max(version), 0) FROM schema_migrations"
RECORD_MIGRATION = "INSERT INTO schema_migrations (version) VALUES ($1)"

# ---------------------------------------------------------------------------------------------
# Statements (every value is a $n parameter)

_RECORD_COLUMNS = "from_key, to_key, status, source, modified_us, note, evidence"

PING = "SELECT 1"
SELECT_RECORDS = (
    f"SELECT {_RECORD_COLUMNS} FROM consent WHERE to_key = $1 AND from_key = ANY($2::text[])"
)
SELECT_RECORDS_OF_ANY = (
    f"SELECT {_RECORD_COLUMNS} FROM consent"
    " WHERE to_key = ANY($1::text[]) AND from_key = ANY($2::text[])"
)
"""Several lookups as one index scan (rows of other combinations are dropped after: cheaper
than an OR of exact conditions, which becomes a bitmap scan)."""
SELECT_RECORDS_OF_PAIRS = (
    # One primary-key probe per pair (LIMIT 1 keeps the planner from turning the lateral
    # subquery into a hash join over the whole table once it holds millions of records). The
    # pairs come as array literals (see _text_array): distinct already, no dedupe needed.
    f"SELECT c.* FROM unnest($1::text::text[], $2::text::text[]) AS k(to_key, from_key),"
    f" LATERAL (SELECT {_RECORD_COLUMNS} FROM consent"
    " WHERE to_key = k.to_key AND from_key = k.from_key LIMIT 1) c"
)
LOCK_CLOCK = (
    "SELECT last_us, floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
    " FROM clock WHERE id = 1 FOR UPDATE"
)

# One statement for everything a consent-writing unit of work changes once it has decided:
# removed records, new records, history in order, cleared footer state, change-log entries and
# the clock. Branches a call does not need get empty arrays.
WRITE = """
WITH removed AS (
    DELETE FROM consent c USING unnest($1::text[], $2::text[]) AS k(to_key, from_key)
    WHERE c.to_key = k.to_key AND c.from_key = k.from_key
), upserted AS (
    INSERT INTO consent (to_key, from_key, status, source, modified_us, note, evidence)
    SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
        $8::text[], $9::text[])
    ON CONFLICT (to_key, from_key) DO UPDATE SET status = excluded.status,
        source = excluded.source, modified_us = excluded.modified_us, note = excluded.note,
        evidence = excluded.evidence
), history AS (
    INSERT INTO consent_history (from_key, to_key, old_status, new_status, source, actor,
        modified_us, note, evidence)
    SELECT h.from_key, h.to_key, h.old_status, h.new_status, h.source, h.actor, h.modified_us,
        h.note, h.evidence
    FROM unnest($10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
        $16::bigint[], $17::text[], $18::text[])
        WITH ORDINALITY AS h(from_key, to_key, old_status, new_status, source, actor,
            modified_us, note, evidence, n)
    ORDER BY h.n
), footer AS (
    DELETE FROM footer_sent f USING unnest($19::text[], $20::text[]) AS k(to_key, from_key)
    WHERE f.to_key = k.to_key AND f.from_key = k.from_key
), logged AS (
    INSERT INTO change_log (at_us, kind, from_key, to_key)
    SELECT $21::bigint, l.kind, l.from_key, l.to_key
    FROM unnest($22::text[], $23::text[], $24::text[]) WITH ORDINALITY AS l(kind, from_key,
        to_key, n)
    ORDER BY l.n
)
UPDATE clock SET last_us = $25 WHERE id = 1 AND last_us <> $25
"""

HISTORY_COLUMNS = (
    "from_key",
    "to_key",
    "old_status",
    "new_status",
    "source",
    "actor",
    "modified_us",
    "note",
    "evidence",
)
CONSENT_COLUMNS = ("to_key", "from_key", "status", "source", "modified_us", "note", "evidence")

SELECT_HISTORY = (
    "SELECT id, from_key, to_key, old_status, new_status, source, actor, modified_us, note,"
    " evidence FROM consent_history"
)
INSERT_BLOCKED = (
    "INSERT INTO blocked_send (at_us, dialect, from_key, to_key, reason, request_id,"
    " text_length, text_sha256, text) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)
SELECT_BLOCKED = (
    "SELECT id, at_us, dialect, from_key, to_key, reason, request_id, text_length, text_sha256,"
    " text FROM blocked_send"
)
COUNT_BLOCKED = "SELECT reason, count(*) FROM blocked_send"
DAILY_ACTIVITY = """
    SELECT day, sum(blocked), sum(opted_out) FROM (
        SELECT at_us / $1::bigint AS day, 1 AS blocked, 0 AS opted_out FROM blocked_send
        WHERE at_us >= $2::bigint AND at_us < $3::bigint
        UNION ALL
        SELECT modified_us / $1::bigint, 0, 1 FROM consent_history
        WHERE new_status = 'OptOut' AND modified_us >= $2::bigint AND modified_us < $3::bigint
    ) activity GROUP BY day ORDER BY day
"""
DELETE_EXPIRED_SESSIONS = "DELETE FROM console_session WHERE expires_us <= $1"
INSERT_SESSION = (
    "INSERT INTO console_session (id_hash, name, role, csrf_token, created_us, expires_us)"
    " VALUES ($1, $2, $3, $4, $5, $6)"
)
SELECT_SESSION = (
    "SELECT id_hash, name, role, csrf_token, created_us, expires_us FROM console_session"
    " WHERE id_hash = $1 AND expires_us > $2"
)
DELETE_SESSION = "DELETE FROM console_session WHERE id_hash = $1"

SELECT_FOOTER = "SELECT 1 FROM footer_sent WHERE to_key = $1 AND from_key = $2"
INSERT_FOOTER = "INSERT INTO footer_sent (to_key, from_key) VALUES ($1, $2) ON CONFLICT DO NOTHING"

UPSERT_SERVICE_NUMBERS = """
    INSERT INTO service_number (number_key, service_key)
    SELECT n, $1::text FROM unnest($2::text[]) AS n
    ON CONFLICT (number_key) DO UPDATE SET service_key = excluded.service_key
"""
SELECT_SERVICE_OF = "SELECT service_key FROM service_number WHERE number_key = $1"
SELECT_SERVICE_NUMBERS = "SELECT number_key, service_key FROM service_number"

SELECT_LIST_GENERATION = (
    "SELECT generation, members FROM suppression_list WHERE name = $1 FOR UPDATE"
)
SELECT_LIST = "SELECT generation FROM suppression_list WHERE name = $1"
DELETE_STALE = """
    DELETE FROM suppression WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM suppression WHERE list_name = $1 AND generation <> $2 LIMIT $3))
"""
SUPPRESSION_DELETE_BATCH = 5000
INSERT_SUPPRESSIONS = """
    INSERT INTO suppression (to_key, list_name, generation)
    SELECT k, $2::text, $3::bigint FROM unnest($1::text[]) AS k
    ON CONFLICT DO NOTHING
"""
COUNT_STAGED = """
    SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (
        SELECT 1 FROM suppression o
        WHERE o.list_name = $1 AND o.generation = $2 AND o.to_key = n.to_key))
    FROM suppression n WHERE n.list_name = $1 AND n.generation = $3
"""
UPSERT_LIST = """
    INSERT INTO suppression_list (name, kind, listed_us, imported_us, members, note, generation)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, listed_us = excluded.listed_us,
        imported_us = excluded.imported_us, members = excluded.members, note = excluded.note,
        generation = excluded.generation
"""
DELETE_LIST = "DELETE FROM suppression_list WHERE name = $1 RETURNING members"
SELECT_SUPPRESSIONS_OF = """
    SELECT l.name, l.kind, l.listed_us FROM suppression s JOIN suppression_list l
        ON l.name = s.list_name AND l.generation = s.generation
    WHERE s.to_key = $1 ORDER BY l.name
"""
SELECT_LISTS = (
    "SELECT name, kind, listed_us, imported_us, members, note FROM suppression_list ORDER BY name"
)
SELECT_LIST_MEMBERS = """
    SELECT s.to_key FROM suppression s JOIN suppression_list l
        ON l.name = s.list_name AND l.generation = s.generation
    WHERE s.list_name = $1 AND s.to_key > $2 ORDER BY s.to_key LIMIT $3
"""

INSERT_INBOUND = (
    "INSERT INTO inbound_message (provider, message_id, received_us) VALUES ($1, $2, $3)"
    " ON CONFLICT DO NOTHING RETURNING 1"
)
INSERT_OUTBOX = """
    INSERT INTO outbox (kind, payload, created_us, not_before_us, deadline_us, ordering_key)
    SELECT o.kind, o.payload, $1::bigint, o.not_before_us, o.deadline_us, o.ordering_key
    FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[])
        WITH ORDINALITY AS o(kind, payload, not_before_us, deadline_us, ordering_key, n)
    ORDER BY o.n
    RETURNING id
"""
SELECT_DUE_OUTBOX = (
    "SELECT id, kind, payload, created_us, not_before_us, deadline_us, attempts FROM outbox"
    " WHERE state = 'pending' AND not_before_us <= $1 ORDER BY not_before_us, id LIMIT $2"
)
# $1 now, $2 owner, $3 the heartbeat a live owner has sent since: due, and held by no live
# worker (a lease run out, or its owner gone).
_CLAIMABLE = """
    o.not_before_us <= $1 AND (o.lease_until_us <= $1 OR (o.lease_owner IS NOT NULL
        AND o.lease_owner <> $2 AND NOT EXISTS (SELECT 1 FROM outbox_worker w
            WHERE w.owner = o.lease_owner AND w.heartbeat_us > $3)))
"""
# The first entries of no ordered queue that a claim may take ($4 limit), read in the order of
# the outbox_pending_free index; rows another claimer holds right now are skipped.
CLAIM_FREE = f"""
    SELECT o.id, o.not_before_us FROM outbox o
    WHERE o.state = 'pending' AND o.ordering_key IS NULL AND {_CLAIMABLE}
    ORDER BY o.not_before_us, o.id LIMIT $4
    FOR UPDATE OF o SKIP LOCKED
"""
# The head of each ordered queue, if a claim may take it: the first pending entry in
# outbox_queue's order, then each next one whose key is greater, one index seek each, so the
# entries waiting behind a head (a subscriber that is down holds its events for days) are never
# read. (Asked for the head of one key, the planner reads the primary key in id order instead,
# past every entry queued before it.)
CLAIM_HEADS = f"""
    WITH RECURSIVE head(id, ordering_key) AS (
        (SELECT id, ordering_key FROM outbox
            WHERE state = 'pending' AND ordering_key IS NOT NULL
            ORDER BY ordering_key, id LIMIT 1)
        UNION ALL
        SELECT n.id, n.ordering_key FROM head, LATERAL (
            SELECT q.id, q.ordering_key FROM outbox q
            WHERE q.state = 'pending' AND q.ordering_key > head.ordering_key
            ORDER BY q.ordering_key, q.id LIMIT 1) n
    )
    SELECT o.id, o.not_before_us FROM head JOIN outbox o ON o.id = head.id
    WHERE o.state = 'pending' AND {_CLAIMABLE}
    FOR UPDATE OF o SKIP LOCKED
"""
# $1 the entries, $2 leased until, $3 owner.
LEASE_OUTBOX = """
    UPDATE outbox SET lease_until_us = $2, lease_owner = $3 WHERE id = ANY($1::bigint[])
    RETURNING id, kind, payload, created_us, not_before_us, deadline_us, attempts, in_flight
"""
OUTBOX_BEGIN = "UPDATE outbox SET in_flight = true WHERE id = $1"
OUTBOX_HEARTBEAT = (
    "INSERT INTO outbox_worker (owner, heartbeat_us) VALUES ($1, $2)"
    " ON CONFLICT (owner) DO UPDATE SET heartbeat_us = excluded.heartbeat_us"
)
OUTBOX_FINISH = (
    "UPDATE outbox SET state = $2, last_error = $3, attempts = attempts + 1 WHERE id = $1"
)
OUTBOX_RETRY = (
    "UPDATE outbox SET not_before_us = $2, last_error = $3, attempts = attempts + 1,"
    " lease_until_us = 0, lease_owner = NULL, in_flight = false WHERE id = $1"
)
OUTBOX_STATS = "SELECT count(*), min(created_us) FROM outbox WHERE state = 'pending'"

SELECT_VALUE = "SELECT value FROM setting WHERE name = $1"
DELETE_VALUE = "DELETE FROM setting WHERE name = $1"
UPSERT_VALUE = (
    "INSERT INTO setting (name, value) VALUES ($1, $2)"
    " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)

ERASE = """
    WITH a AS (DELETE FROM consent WHERE to_key = $1 RETURNING 1),
    b AS (DELETE FROM consent_history WHERE to_key = $1 RETURNING 1),
    c AS (DELETE FROM blocked_send WHERE to_key = $1 RETURNING 1),
    d AS (DELETE FROM footer_sent WHERE to_key = $1 RETURNING 1),
    e AS (DELETE FROM send_slot WHERE to_key = $1 RETURNING 1),
    f AS (DELETE FROM review WHERE to_key = $1 RETURNING 1)
    SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b) + (SELECT count(*) FROM c)
        + (SELECT count(*) FROM d) + (SELECT count(*) FROM e) + (SELECT count(*) FROM f)
"""
# Frequency caps: one recipient's slots are counted under a transaction-scoped advisory lock on
# its key, so gateways racing for the same recipient count in turn (the lock is taken for every
# recipient of a call, in key order, before any is counted: no deadlock between two calls).
LOCK_SEND_SLOTS = (
    "SELECT pg_advisory_xact_lock(hashtext('stopgate.send_slot'), hashtext(k))"
    " FROM unnest($1::text[]) AS k ORDER BY k"
)
COUNTED_SEND_SLOTS = """
    WITH expired AS (DELETE FROM send_slot WHERE to_key = $1 AND at_us <= $2)
    SELECT at_us FROM send_slot WHERE to_key = $1 AND at_us > $2
"""
INSERT_SEND_SLOT = "INSERT INTO send_slot (to_key, at_us) VALUES ($1, $2) RETURNING id"
DELETE_SEND_SLOTS = "DELETE FROM send_slot WHERE id = ANY($1::bigint[])"
REVIEW_COLUMNS = (
    "id, created_us, provider, message_id, from_key, to_key, text, rule, explanation, language,"
    " clarified, status, resolved_us, resolved_by"
)
# The pair's rows are locked first, so two deliveries at once cannot both be clarified.
LOCK_REVIEW_PAIR = "SELECT pg_advisory_xact_lock(hashtext('stopgate.review'), hashtext($1 || $2))"
REVIEW_CLARIFIED = (
    "SELECT 1 FROM review WHERE to_key = $1 AND from_key = $2 AND clarified AND created_us >= $3"
    " LIMIT 1"
)
INSERT_REVIEW = (
    "INSERT INTO review (created_us, provider, message_id, from_key, to_key, text, rule,"
    " explanation, language, clarified) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    " ON CONFLICT (provider, message_id) DO NOTHING RETURNING id"
)
SELECT_REVIEWS = (
    f"SELECT {REVIEW_COLUMNS} FROM review WHERE ($1::text IS NULL OR status = $1)"
    " AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
)
RESOLVE_REVIEW = (
    "UPDATE review SET status = $2, resolved_us = $3, resolved_by = $4"
    f" WHERE id = $1 AND status = 'open' RETURNING {REVIEW_COLUMNS}"
)
SEND_SLOT_TIMES = "SELECT at_us FROM send_slot WHERE to_key = $1 AND at_us > $2 ORDER BY at_us"
# Ids grow with time: walking the primary key finds the oldest slots first. Slots this old are
# outside every cap's window, so no lock against take_send_slots is needed.
PRUNE_SEND_SLOTS = """
    DELETE FROM send_slot WHERE id IN
        (SELECT id FROM send_slot WHERE at_us <= $1 ORDER BY id LIMIT $2)
"""
PRUNE = """
    WITH a AS (DELETE FROM blocked_send WHERE at_us < $1 RETURNING 1),
    b AS (DELETE FROM consent_history WHERE modified_us < $2 RETURNING 1)
    SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b)
"""

CHANGE_HEAD = "SELECT coalesce(max(seq), 0) FROM change_log"
CHANGES_AFTER = (
    "SELECT seq, kind, from_key, to_key FROM change_log WHERE seq > $1 ORDER BY seq LIMIT $2"
)
CHANGE_OLDEST = "SELECT min(seq) FROM change_log"
PRUNE_CHANGES = (
    "DELETE FROM change_log WHERE at_us < $1 AND seq < (SELECT max(seq) FROM change_log)"
)

BULK_COPY_MIN = 500
"""An apply with at least this many applied changes writes through COPY."""
CHANGE_LOG_BULK = 256
"""Above this many pairs in one transaction, the change log says "flush all" once."""

# ---------------------------------------------------------------------------------------------
# URL

_DEFAULTS: dict[str, int] = {
    "statement_timeout_ms": 5000,
    "idle_in_transaction_timeout_ms": 60_000,
    "connect_timeout_ms": 5000,
    "acquire_timeout_ms": 5000,
    "statement_cache_size": 100,
    "pool_min_size": 1,
    "pool_max_size": 10,
}
_PASS_THROUGH = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslcrl",
        "sslpassword",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "target_session_attrs",
        "passfile",
        "service",
    }
)
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class PostgresOptions:
    dsn: str
    """The URL handed to asyncpg: this store's own options removed."""
    statement_timeout_ms: int
    idle_in_transaction_timeout_ms: int
    connect_timeout_ms: int
    acquire_timeout_ms: int
    statement_cache_size: int
    pool_min_size: int
    pool_max_size: int
    schema: str | None
    application_name: str

    def server_settings(self) -> dict[str, str]:
        settings = {"application_name": self.application_name}
        if self.statement_timeout_ms:
            settings["statement_timeout"] = str(self.statement_timeout_ms)
        if self.idle_in_transaction_timeout_ms:
            settings["idle_in_transaction_session_timeout"] = str(
                self.idle_in_transaction_timeout_ms
            )
        if self.schema is not None:
            settings["search_path"] = self.schema
        return settings


def parse_url(url: str) -> PostgresOptions:
    """Split a ``postgresql://`` URL into asyncpg's DSN and this store's options. Raises
    ``ValueError`` for another scheme, an unknown option or a bad value."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL (expected postgresql://…): scheme {parts.scheme!r}")
    if not parts.path.strip("/"):
        raise ValueError("the PostgreSQL URL names no database: postgresql://USER@HOST/DATABASE")
    given = parse_qsl(parts.query, keep_blank_values=True)
    numbers = dict(_DEFAULTS)
    schema: str | None = None
    application_name = "stopgate"
    passed: list[tuple[str, str]] = []
    unknown: list[str] = []
    for name, value in given:
        if name in numbers:
            try:
                numbers[name] = int(value)
            except ValueError:
                raise ValueError(f"PostgreSQL URL option {name} must be an integer") from None
            if numbers[name] < 0:
                raise ValueError(f"PostgreSQL URL option {name} must not be negative")
        elif name == "schema":
            if not _SCHEMA_NAME.fullmatch(value):
                raise ValueError(
                    "PostgreSQL URL option schema must be a lower-case identifier"
                    " ([a-z_][a-z0-9_]*, at most 63 characters)"
                )
            schema = value
        elif name == "application_name":
            application_name = value
        elif name in _PASS_THROUGH:
            passed.append((name, value))
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(f"unknown PostgreSQL URL options: {', '.join(sorted(set(unknown)))}")
    if numbers["pool_max_size"] < 1 or numbers["pool_min_size"] > numbers["pool_max_size"]:
        raise ValueError("PostgreSQL URL options: need 1 <= pool_max_size and min <= max")
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(passed), parts.fragment))
    return PostgresOptions(
        dsn=dsn,
        statement_timeout_ms=numbers["statement_timeout_ms"],
        idle_in_transaction_timeout_ms=numbers["idle_in_transaction_timeout_ms"],
        connect_timeout_ms=numbers["connect_timeout_ms"],
        acquire_timeout_ms=numbers["acquire_timeout_ms"],
        statement_cache_size=numbers["statement_cache_size"],
        pool_min_size=numbers["pool_min_size"],
        pool_max_size=numbers["pool_max_size"],
        schema=schema,
        application_name=application_name,
    )


# ---------------------------------------------------------------------------------------------
# Errors and retries

_ATTEMPTS = 3
_BACKOFF_S = 0.02

_CONNECTION_LOST: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # class 08, incl. "closed in the middle of operation"
    asyncpg.AdminShutdownError,  # pg_terminate_backend, smart/fast shutdown
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,  # starting up, recovery
    asyncpg.InternalClientError,  # e.g. a query on a connection whose server ended it while idle
    ConnectionError,  # refused, reset, aborted, broken pipe
)
_ROLLED_BACK: tuple[type[BaseException], ...] = (
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.InvalidCachedStatementError,  # a migration changed a table under a prepared plan
    asyncpg.ReadOnlySQLTransactionError,  # a demoted primary after failover
)
_TRANSIENT = _CONNECTION_LOST + _ROLLED_BACK
_RECYCLE = (*_CONNECTION_LOST, asyncpg.ReadOnlySQLTransactionError)
"""Errors after which the pool's other connections are suspect too."""
_DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


class _OutcomeUnknown(Exception):
    """The connection was lost while COMMIT was in flight."""


def _describe(exc: BaseException) -> str:
    sqlstate = getattr(exc, "sqlstate", None)
    text = str(exc) or type(exc).__name__
    return f"postgresql: {text}" + (f" [{sqlstate}]" if sqlstate else "")


async def _keep_session(conn: Any) -> None:
    """Nothing to reset when a connection goes back to the pool: units of work leave no
    session state (no SET, LISTEN, cursors or session locks), and asyncpg still rolls back a
    transaction left open. Saves the round trip of asyncpg's default ``RESET ALL`` etc."""


def _usable(conn: Any) -> bool:
    """Whether a pooled connection held outside the pool is still open and still ours (the
    pool takes back a connection the server closed)."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # taken back: "connection has been released to the pool"
        return False


def _record(row: Sequence[Any]) -> ConsentRecord:
    return ConsentRecord(row[0], row[1], OptStatus(row[2]), Source(row[3]), row[4], row[5], row[6])


# ---------------------------------------------------------------------------------------------
# Writes decided in Python, written in one statement


@dataclass(slots=True)
class _Writes:
    """What one consent-writing transaction changes, gathered before it is written."""

    last_us: int
    now_us: int
    start_us: int = 0
    removed: list[tuple[str, str]] = field(default_factory=list)
    """(to_key, from_key)"""
    final: dict[tuple[str, str], ConsentRecord] = field(default_factory=dict)
    history: list[tuple[Any, ...]] = field(default_factory=list)
    footer: dict[tuple[str, str], None] = field(default_factory=dict)
    log: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    created: set[tuple[str, str]] = field(default_factory=set)
    """(to_key, from_key) of the records in ``final`` whose pair had no record before."""
    new_rows: list[tuple[Any, ...]] = field(default_factory=list)
    """Rows for ``consent`` (in :data:`CONSENT_COLUMNS` order) of pairs that had no record,
    decided column by column (:func:`_decide_distinct`) instead of through ``final``."""
    upserts: list[tuple[Any, ...]] = field(default_factory=list)
    """Rows, likewise, that replace the record of their pair."""

    def __post_init__(self) -> None:
        self.start_us = self.last_us

    def stamp(self) -> int:
        self.last_us = max(self.now_us, self.last_us + 1)
        return self.last_us

    def empty(self) -> bool:
        return not (
            self.removed
            or self.final
            or self.new_rows
            or self.upserts
            or self.history
            or self.footer
            or self.log
            or self.last_us != self.start_us
        )

    def log_changes(self, pairs: Sequence[tuple[str, str]], kind: str = "pair") -> None:
        """(from_key, to_key) pairs whose cache entries went stale; more than CHANGE_LOG_BULK
        of them (or another kind) become one entry."""
        if not pairs and kind == "pair":
            return
        if kind != "pair" or len(pairs) > CHANGE_LOG_BULK:
            self.log.append(("all" if kind == "pair" else kind, None, None))
            return
        self.log.extend(("pair", f, t) for f, t in pairs)


def _decide(
    writes: _Writes, changes: Sequence[ConsentChange], current: dict[tuple[str, str], ConsentRecord]
) -> list[AppliedChange]:
    """The row-by-row semantics of :meth:`ConsentStore.apply` over records read under the lock."""
    results: list[AppliedChange] = []
    for change in changes:
        modified_us = writes.stamp() if change.modified_us is None else change.modified_us
        record = ConsentRecord(
            change.from_key,
            change.to_key,
            change.status,
            change.source,
            modified_us,
            change.note,
            change.evidence,
        )
        key = (change.to_key, change.from_key)
        existing = current.get(key)
        if not supersedes(record, existing):
            results.append(AppliedChange(existing or record, None, applied=False))
            continue
        previous = existing.status if existing else None
        if existing is None:
            writes.created.add(key)
        current[key] = record
        writes.final[key] = record
        writes.history.append(
            (
                record.from_key,
                record.to_key,
                previous.value if previous else None,
                record.status.value,
                record.source.value,
                change.actor,
                record.modified_us,
                record.note,
                record.evidence,
            )
        )
        if record.status is OptStatus.OPT_IN:
            writes.footer[key] = None
        results.append(AppliedChange(record, previous, applied=True))
    writes.log_changes([(r.record.from_key, r.record.to_key) for r in results if r.applied])
    return results


def _text_array(values: Sequence[str]) -> str:
    """``values`` as a PostgreSQL array literal, for a ``$n::text::text[]`` parameter: every
    element quoted, its backslashes and quotes escaped, so any text reads back as itself. An
    import's key lists are tens of thousands long, and the driver's own array encoding checks
    each element against abstract base classes (twice the cost of this)."""
    if not values:
        return "{}"
    body = '","'.join(values)
    if "\\" in body or body.count('"') != 2 * (len(values) - 1):
        # Some element holds a quote or a backslash (the usual keys hold neither).
        body = '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return '{"' + body + '"}'


def _change_record(change: ConsentChange) -> ConsentRecord:
    """The record a timed change becomes."""
    return ConsentRecord(
        change.from_key,
        change.to_key,
        change.status,
        change.source,
        change.modified_us or 0,
        change.note,
        change.evidence,
    )


def _decide_distinct(
    writes: _Writes, changes: Sequence[ConsentChange], current: dict[tuple[str, str], ConsentRecord]
) -> list[tuple[int, OptStatus | None]] | None:
    """:func:`_decide` for an import batch whose pairs are distinct and whose changes all carry
    their time (then no change's outcome depends on another's), written column by column without
    a record or result object per change: the positions of the changes that applied, each with
    the status it replaced. ``None`` for any other batch, and for one too small to ``COPY``."""
    if len(changes) < BULK_COPY_MIN:
        return None
    to_keys = [c.to_key for c in changes]
    from_keys = [c.from_key for c in changes]
    modified = [c.modified_us for c in changes]
    if None in modified or len(set(zip(to_keys, from_keys, strict=True))) != len(changes):
        return None
    statuses = [c.status.value for c in changes]
    sources = [c.source.value for c in changes]
    actors = [c.actor for c in changes]
    notes = [c.note for c in changes]
    evidence = [c.evidence for c in changes]
    won: list[int] = []
    previous: list[OptStatus | None] = []
    if current:
        for i, key in enumerate(zip(to_keys, from_keys, strict=True)):
            existing = current.get(key)
            if existing is not None and not supersedes(_change_record(changes[i]), existing):
                continue
            won.append(i)
            previous.append(existing.status if existing is not None else None)
    else:
        won = list(range(len(changes)))
        previous = [None] * len(changes)
    if len(won) < len(changes):

        def pick(column: list[Any]) -> list[Any]:
            return [column[i] for i in won]

        to_keys, from_keys, statuses, sources = (
            pick(to_keys),
            pick(from_keys),
            pick(statuses),
            pick(sources),
        )
        actors, modified, notes, evidence = (
            pick(actors),
            pick(modified),
            pick(notes),
            pick(evidence),
        )
    writes.history = list(
        zip(
            from_keys,
            to_keys,
            [p.value if p is not None else None for p in previous] if current else repeat(None),
            statuses,
            sources,
            actors,
            modified,
            notes,
            evidence,
            strict=False,
        )
    )
    rows = zip(to_keys, from_keys, statuses, sources, modified, notes, evidence, strict=True)
    if current:
        for row, was in zip(rows, previous, strict=True):
            (writes.new_rows if was is None else writes.upserts).append(row)
    else:
        writes.new_rows = list(rows)
    opt_in = OptStatus.OPT_IN.value
    writes.footer = dict.fromkeys(
        (t, f) for t, f, s in zip(to_keys, from_keys, statuses, strict=True) if s == opt_in
    )
    writes.log_changes(list(zip(from_keys, to_keys, strict=True)))
    return list(zip(won, previous, strict=True))


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


class PostgresStore:
    """:class:`gateway.store.base.ConsentStore` on PostgreSQL."""

    url_scheme = "postgresql"

    pushes_changes = True
    """Change-feed readers are woken by NOTIFY; polling is only their safety net."""

    def __init__(self, url: str) -> None:
        self.options = parse_url(url)
        self._pool: Any = None
        self._closed = False
        self._listener: Any = None
        self._listener_schema = ""
        self._woken = asyncio.Event()
        self._readers_limit = self.options.pool_max_size // 2
        """Pooled connections reads may keep for themselves (see :meth:`_read_leased`); the
        rest stay free for writes. None with a pool of one."""
        self._readers = 0
        self._idle_readers: list[Any] = []
        self._readers_generation = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        if self._closed:
            raise StoreUnavailable("the PostgreSQL store is closed")
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._migrate()
                self._pool = await self._create_pool()
                return
            except _TRANSIENT as exc:  # e.g. a server still starting next to us
                if attempt >= _ATTEMPTS:
                    raise StoreUnavailable(_describe(exc)) from exc
            except _DRIVER_ERRORS as exc:
                raise StoreUnavailable(_describe(exc)) from exc
            await asyncio.sleep(_BACKOFF_S * 5 * attempt)

    async def _create_pool(self) -> Any:
        options = self.options
        return await asyncpg.create_pool(
            options.dsn,
            min_size=options.pool_min_size,
            max_size=options.pool_max_size,
            statement_cache_size=options.statement_cache_size,
            timeout=options.connect_timeout_ms / 1000,
            command_timeout=self._command_timeout(),
            server_settings=options.server_settings(),
            reset=_keep_session,
        )

    async def migrate(self) -> int:
        """Bring the schema up to date (also done by :meth:`open`); returns its version."""
        try:
            return await self._migrate()
        except _DRIVER_ERRORS as exc:
            raise StoreUnavailable(_describe(exc)) from exc

    def _command_timeout(self) -> float | None:
        """Client-side bound per statement: the server's own timeout plus a margin, for a
        network that stops answering (the server-side timeout cannot fire then)."""
        ms = self.options.statement_timeout_ms
        return None if ms == 0 else ms / 1000 + 2.0

    async def _migrate(self) -> int:
        """On a connection of its own, with no statement timeout on either side: a migration
        of a big table, or the wait for another process's migration, may take long."""
        options = self.options
        schema = options.schema
        conn = await asyncpg.connect(
            options.dsn,
            timeout=options.connect_timeout_ms / 1000,
            statement_cache_size=0,
            server_settings=options.server_settings(),
        )
        try:
            async with conn.transaction():
                await conn.execute(MIGRATION_NO_TIMEOUT)
                await conn.execute(MIGRATION_LOCK, schema or "")
                if schema is not None and await conn.fetchval(SCHEMA_EXISTS, schema) is None:
                    await conn.execute(f'CREATE SCHEMA "{schema}"')
                await conn.execute(CREATE_MIGRATIONS_TABLE)
                version = int(await conn.fetchval(SCHEMA_VERSION))
                for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                    await conn.execute(script)
                    await conn.execute(RECORD_MIGRATION, number)
                    log.info("PostgreSQL store migrated to version %d", number)
                return max(version, len(MIGRATIONS))
        finally:
            with contextlib.suppress(*_DRIVER_ERRORS):
                await conn.close(timeout=5)

    async def close(self) -> None:
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(*_DRIVER_ERRORS):
                await listener.close(timeout=2)
        pool, self._pool = self._pool, None
        if pool is None:
            return
        await self._release_idle_readers(pool)
        try:
            await asyncio.wait_for(pool.close(), timeout=5.0)
        except _DRIVER_ERRORS:
            pool.terminate()

    # -- running units of work ---------------------------------------------------------------

    async def _read(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """A read: safe to repeat after any transient failure."""
        return await self._run(work, transaction=False, idempotent=True)

    async def _write(self, work: Callable[[Any], Awaitable[T]], *, idempotent: bool = False) -> T:
        """One transaction. Repeated after a transient failure only when it surely did not
        commit, or when doing it twice is the same as doing it once."""
        return await self._run(work, transaction=True, idempotent=idempotent)

    async def _run(
        self, work: Callable[[Any], Awaitable[T]], *, transaction: bool, idempotent: bool
    ) -> T:
        attempt = 0
        while True:
            attempt += 1
            pool = self._pool
            if pool is None:
                raise StoreUnavailable("the PostgreSQL store is closed")
            try:
                return await self._once(pool, work, transaction)
            except _OutcomeUnknown as exc:
                cause = exc.__cause__ or exc
                await self._recycle(pool)
                if not idempotent or attempt >= _ATTEMPTS:
                    raise StoreUnavailable(
                        f"{_describe(cause)} (the connection was lost during COMMIT: the write"
                        " may or may not have been applied)"
                    ) from cause
            except _TRANSIENT as exc:
                if isinstance(exc, _RECYCLE):
                    await self._recycle(pool)
                if attempt >= _ATTEMPTS:
                    raise StoreUnavailable(_describe(exc)) from exc
                log.warning("PostgreSQL store: %s; trying again", _describe(exc))
            except _DRIVER_ERRORS as exc:
                raise StoreUnavailable(_describe(exc)) from exc
            await asyncio.sleep(_BACKOFF_S * (2 ** (attempt - 1)) * (1 + random.random()))  # noqa: S311

    async def _acquire(self, pool: Any) -> Any:
        try:
            return await pool.acquire(timeout=self.options.acquire_timeout_ms / 1000)
        except asyncpg.InterfaceError as exc:
            if self._pool is None:  # closed meanwhile
                raise StoreUnavailable("the PostgreSQL store is closed") from exc
            raise

    async def _once(self, pool: Any, work: Callable[[Any], Awaitable[T]], transaction: bool) -> T:
        if not transaction and (self._idle_readers or self._readers < self._readers_limit):
            return await self._read_leased(pool, work)
        conn = await self._acquire(pool)
        try:
            if not transaction:
                return await work(conn)
            tx = conn.transaction()
            await tx.start()
            try:
                result = await work(conn)
            except BaseException:
                with contextlib.suppress(*_DRIVER_ERRORS):
                    await tx.rollback()
                raise
            try:
                await tx.commit()
            except _CONNECTION_LOST as exc:
                raise _OutcomeUnknown() from exc
            return result
        except (*_RECYCLE, _OutcomeUnknown):
            with contextlib.suppress(*_DRIVER_ERRORS):  # (already detached when it closed)
                conn.terminate()  # never hand this connection out again
            raise
        finally:
            with contextlib.suppress(*_DRIVER_ERRORS):
                await pool.release(conn)

    async def _read_leased(self, pool: Any, work: Callable[[Any], Awaitable[T]]) -> T:
        """A read on a connection kept out of the pool between reads. A pool's acquire and
        release cost more CPU than a primary-key lookup itself (a cache miss on the send path):
        up to ``pool_max_size // 2`` connections, taken from the pool as reads need them, go
        back to an idle list of their own instead. One that fails goes back to the pool (which
        cleans it up or, when the connection broke, replaces it); :meth:`_recycle` and
        :meth:`close` give the idle ones back too."""
        conn = None
        while self._idle_readers and conn is None:
            conn = self._idle_readers.pop()
            if not _usable(conn):  # the server closed it while idle
                self._readers -= 1
                with contextlib.suppress(*_DRIVER_ERRORS):
                    await pool.release(conn)
                conn = None
        if conn is None:
            self._readers += 1
            try:
                conn = await self._acquire(pool)
            except BaseException:
                self._readers -= 1
                raise
        generation = self._readers_generation
        try:
            result = await work(conn)
        except BaseException as exc:
            self._readers -= 1
            if isinstance(exc, _RECYCLE):
                with contextlib.suppress(*_DRIVER_ERRORS):
                    conn.terminate()
            with contextlib.suppress(*_DRIVER_ERRORS):
                await pool.release(conn)
            raise
        if generation == self._readers_generation and self._pool is pool:
            self._idle_readers.append(conn)
        else:  # recycled or closed meanwhile
            self._readers -= 1
            with contextlib.suppress(*_DRIVER_ERRORS):
                await pool.release(conn)
        return result

    async def _release_idle_readers(self, pool: Any) -> None:
        self._readers_generation += 1
        idle, self._idle_readers = self._idle_readers, []
        self._readers -= len(idle)
        for conn in idle:
            with contextlib.suppress(*_DRIVER_ERRORS):
                await pool.release(conn)

    async def _recycle(self, pool: Any) -> None:
        """After a lost connection, the others may be dead too (a restarted server): have the
        pool replace every idle connection before it is used again."""
        with contextlib.suppress(*_DRIVER_ERRORS):
            await pool.expire_connections()
        await self._release_idle_readers(pool)

    @staticmethod
    async def _lock_clock(conn: Any) -> _Writes:
        row = await conn.fetchrow(LOCK_CLOCK)
        return _Writes(last_us=int(row[0]), now_us=int(row[1]))

    @staticmethod
    async def _current(
        conn: Any, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], ConsentRecord]:
        """The records of (to_key, from_key) pairs, read in their own statement (after the clock
        lock, so it sees every earlier consent write)."""
        if not keys:
            return {}
        unique = list(dict.fromkeys(keys))
        rows = await conn.fetch(
            SELECT_RECORDS_OF_PAIRS,
            _text_array([k[0] for k in unique]),
            _text_array([k[1] for k in unique]),
        )
        return {(row[1], row[0]): _record(row) for row in rows}

    @staticmethod
    async def _apply_locked(
        conn: Any, writes: _Writes, changes: Sequence[ConsentChange]
    ) -> list[AppliedChange]:
        current = await PostgresStore._current(conn, [(c.to_key, c.from_key) for c in changes])
        return _decide(writes, changes, current)

    @staticmethod
    async def _flush(conn: Any, writes: _Writes) -> None:
        if writes.empty():
            return
        final = [
            (
                r.to_key,
                r.from_key,
                r.status.value,
                r.source.value,
                r.modified_us,
                r.note,
                r.evidence,
            )
            for r in writes.final.values()
        ]
        final += writes.upserts
        history = writes.history
        created = writes.new_rows
        if len(history) >= BULK_COPY_MIN:
            await conn.copy_records_to_table(
                "consent_history", records=history, columns=HISTORY_COLUMNS
            )
            history = []
            if writes.created:
                created = created + [row for row in final if (row[0], row[1]) in writes.created]
                final = [row for row in final if (row[0], row[1]) not in writes.created]
        if created:
            await conn.copy_records_to_table("consent", records=created, columns=CONSENT_COLUMNS)
        removed = _columns(writes.removed, 2)
        footer = _columns(list(writes.footer), 2)
        logged = _columns(writes.log, 3)
        await conn.execute(
            WRITE,
            *removed,
            *_columns(final, 7),
            *_columns(history, 9),
            *footer,
            time.time_ns() // 1000,
            *logged,
            writes.last_us,
        )

    @staticmethod
    async def _queue(conn: Any, items: Sequence[OutboxItem], created_us: int) -> list[int]:
        if not items:
            return []
        rows = await conn.fetch(
            INSERT_OUTBOX,
            created_us,
            [i.kind for i in items],
            [i.payload for i in items],
            [i.not_before_us for i in items],
            [i.deadline_us for i in items],
            [i.ordering_key for i in items],
        )
        return sorted(int(row[0]) for row in rows)

    # -- consent -----------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._read(lambda conn: conn.fetchval(PING))

    async def get_records(self, to_key: str, from_keys: Sequence[str]) -> dict[str, ConsentRecord]:
        if not from_keys:
            return {}
        keys = list(from_keys)

        async def work(conn: Any) -> dict[str, ConsentRecord]:
            return {row[0]: _record(row) for row in await conn.fetch(SELECT_RECORDS, to_key, keys)}

        return await self._read(work)

    async def get_records_many(
        self, lookups: Sequence[tuple[str, Sequence[str]]]
    ) -> list[dict[str, ConsentRecord]]:
        to_keys = list(dict.fromkeys(to_key for to_key, from_keys in lookups if from_keys))
        if not to_keys:
            return [{} for _ in lookups]
        from_keys_any = list(dict.fromkeys(f for _, from_keys in lookups for f in from_keys))

        async def work(conn: Any) -> list[dict[str, ConsentRecord]]:
            found: dict[str, dict[str, ConsentRecord]] = {}
            for row in await conn.fetch(SELECT_RECORDS_OF_ANY, to_keys, from_keys_any):
                found.setdefault(row[1], {})[row[0]] = _record(row)
            return [
                {f: r for f, r in found.get(to_key, {}).items() if f in from_keys}
                for to_key, from_keys in lookups
            ]

        return await self._read(work)

    async def apply(
        self, changes: Sequence[ConsentChange], follow_up: FollowUp | None = None
    ) -> list[AppliedChange]:
        if not changes and follow_up is None:
            return []

        async def work(conn: Any) -> list[AppliedChange]:
            writes = await self._lock_clock(conn)
            results = await self._apply_locked(conn, writes, changes)
            await self._flush(conn, writes)
            if follow_up is not None:
                items = follow_up([r for r in results if r.applied])
                await self._queue(conn, items, time.time_ns() // 1000)
            return results

        return await self._write(work)

    async def import_changes(
        self, changes: Sequence[ConsentChange], follow_up: FollowUp | None = None
    ) -> ImportCounts:
        async def work(conn: Any) -> int:
            writes = await self._lock_clock(conn)
            current = await self._current(conn, [(c.to_key, c.from_key) for c in changes])
            results: list[AppliedChange] = []
            decided = _decide_distinct(writes, changes, current)
            if decided is not None:
                applied = len(decided)
            else:
                results = _decide(writes, changes, current)
                applied = sum(r.applied for r in results)
            await self._flush(conn, writes)
            if follow_up is not None:
                if decided is not None:
                    results = [
                        AppliedChange(_change_record(changes[i]), previous, applied=True)
                        for i, previous in decided
                    ]
                items = follow_up([r for r in results if r.applied])
                await self._queue(conn, items, time.time_ns() // 1000)
            return applied

        applied = await self._write(work)
        return ImportCounts(applied, len(changes) - applied)

    async def list_records(
        self,
        query: RecordQuery,
        *,
        after: PairCursor | None,
        limit: int,
        before: PairCursor | None = None,
    ) -> list[ConsentRecord]:
        where: list[str] = []
        params: list[Any] = []

        def arg(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        if after is not None:
            where.append(f"(to_key, from_key) > ({arg(after[0])}, {arg(after[1])})")
        if before is not None:
            where.append(f"(to_key, from_key) < ({arg(before[0])}, {arg(before[1])})")
        if query.to_key is not None:
            where.append(f"to_key = {arg(query.to_key)}")
        if query.from_keys:
            where.append(f"from_key = ANY({arg(list(query.from_keys))}::text[])")
        if query.statuses:
            where.append(f"status = ANY({arg([s.value for s in query.statuses])}::text[])")
        if query.modified_from_us is not None:
            where.append(f"modified_us >= {arg(query.modified_from_us)}")
        if query.modified_to_us is not None:
            where.append(f"modified_us < {arg(query.modified_to_us)}")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        order = "DESC" if before is not None else "ASC"
        sql = (
            f"SELECT {_RECORD_COLUMNS} FROM consent{clause}"
            f" ORDER BY to_key {order}, from_key {order} LIMIT {arg(limit)}"
        )

        async def work(conn: Any) -> list[ConsentRecord]:
            rows = [_record(row) for row in await conn.fetch(sql, *params)]
            return rows[::-1] if before is not None else rows

        return await self._read(work)

    async def history(
        self, *, to_key: str | None, from_key: str | None, after_id: int | None, limit: int
    ) -> list[HistoryEntry]:
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("to_key", to_key), ("from_key", from_key)):
            if value is not None:
                params.append(value)
                where.append(f"{column} = ${len(params)}")
        if after_id is not None:
            params.append(after_id)
            where.append(f"id > ${len(params)}")
        params.append(limit)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        sql = f"{SELECT_HISTORY}{clause} ORDER BY id LIMIT ${len(params)}"

        async def work(conn: Any) -> list[HistoryEntry]:
            return [
                HistoryEntry(
                    row[0],
                    row[1],
                    row[2],
                    OptStatus(row[3]) if row[3] else None,
                    OptStatus(row[4]) if row[4] else None,
                    Source(row[5]),
                    row[6],
                    row[7],
                    row[8],
                    row[9],
                )
                for row in await conn.fetch(sql, *params)
            ]

        return await self._read(work)

    async def delete_records(
        self, pairs: Sequence[tuple[str, str]], actor: str, note: str | None
    ) -> list[ConsentRecord]:
        async def work(conn: Any) -> list[ConsentRecord]:
            writes = await self._lock_clock(conn)
            current = await self._current(conn, [(to_key, f) for f, to_key in pairs])
            removed: list[ConsentRecord] = []
            for from_key, to_key in pairs:
                record = current.pop((to_key, from_key), None)
                if record is None:
                    continue
                writes.removed.append((to_key, from_key))
                writes.history.append(
                    (
                        from_key,
                        to_key,
                        record.status.value,
                        None,
                        Source.API.value,
                        actor,
                        writes.stamp(),
                        note,
                        None,
                    )
                )
                removed.append(record)
            writes.log_changes([(r.from_key, r.to_key) for r in removed])
            await self._flush(conn, writes)
            return removed

        return await self._write(work)

    async def erase(self, to_key: str, suppression: ConsentRecord | None) -> int:
        async def work(conn: Any) -> int:
            writes = await self._lock_clock(conn)
            writes.log_changes([], kind="all")
            removed = int(await conn.fetchval(ERASE, to_key))
            if suppression is not None:
                await self._apply_locked(
                    conn,
                    writes,
                    [
                        ConsentChange(
                            suppression.from_key,
                            suppression.to_key,
                            suppression.status,
                            suppression.source,
                            actor="erasure",
                            note=suppression.note,
                            modified_us=suppression.modified_us,
                        )
                    ],
                )
            await self._flush(conn, writes)
            return removed

        return await self._write(work)

    async def prune(self, *, blocked_before_us: int | None, history_before_us: int | None) -> int:
        async def work(conn: Any) -> int:
            return int(await conn.fetchval(PRUNE, blocked_before_us, history_before_us))

        return await self._write(work)

    # -- blocked log, footer, services, values -----------------------------------------------

    async def log_blocked(self, entry: BlockedSend) -> None:
        await self.log_blocked_many([entry])

    async def log_blocked_many(self, entries: Sequence[BlockedSend]) -> None:
        rows = [
            (
                e.at_us,
                e.dialect,
                e.from_key,
                e.to_key,
                e.reason,
                e.request_id,
                e.text_length,
                e.text_sha256,
                e.text,
            )
            for e in entries
        ]

        async def work(conn: Any) -> None:
            await conn.executemany(INSERT_BLOCKED, rows)

        await self._write(work)

    async def blocked_sends(
        self, *, before_id: int | None, limit: int
    ) -> list[tuple[int, BlockedSend]]:
        return await self.find_blocked(BlockedQuery(), before_id=before_id, limit=limit)

    @staticmethod
    def _blocked_where(query: BlockedQuery, params: list[Any]) -> list[str]:
        where: list[str] = []

        def arg(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        if query.from_us is not None:
            where.append(f"at_us >= {arg(query.from_us)}")
        if query.to_us is not None:
            where.append(f"at_us < {arg(query.to_us)}")
        if query.from_key is not None:
            where.append(f"from_key = {arg(query.from_key)}")
        if query.to_key is not None:
            where.append(f"to_key = {arg(query.to_key)}")
        if query.reasons:
            where.append(f"reason = ANY({arg(list(query.reasons))}::text[])")
        if query.dialect is not None:
            where.append(f"dialect = {arg(query.dialect)}")
        return where

    async def find_blocked(
        self, query: BlockedQuery, *, before_id: int | None, limit: int
    ) -> list[tuple[int, BlockedSend]]:
        params: list[Any] = []
        where = self._blocked_where(query, params)
        if before_id is not None:
            params.append(before_id)
            where.append(f"id < ${len(params)}")
        params.append(limit)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        sql = f"{SELECT_BLOCKED}{clause} ORDER BY id DESC LIMIT ${len(params)}"

        async def work(conn: Any) -> list[tuple[int, BlockedSend]]:
            return [(int(row[0]), BlockedSend(*row[1:])) for row in await conn.fetch(sql, *params)]

        return await self._read(work)

    async def blocked_totals(self, query: BlockedQuery) -> dict[str, int]:
        params: list[Any] = []
        where = self._blocked_where(query, params)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        sql = f"{COUNT_BLOCKED}{clause} GROUP BY reason"

        async def work(conn: Any) -> dict[str, int]:
            return {str(row[0]): int(row[1]) for row in await conn.fetch(sql, *params)}

        return await self._read(work)

    async def daily_activity(self, *, from_us: int, to_us: int) -> list[DailyActivity]:
        async def work(conn: Any) -> list[DailyActivity]:
            rows = await conn.fetch(DAILY_ACTIVITY, DAY_US, from_us, to_us)
            return [DailyActivity(int(r[0]), int(r[1]), int(r[2])) for r in rows]

        return await self._read(work)

    async def create_console_session(self, session: ConsoleSession) -> None:
        async def work(conn: Any) -> None:
            await conn.execute(DELETE_EXPIRED_SESSIONS, session.created_us)
            await conn.execute(
                INSERT_SESSION,
                session.id_hash,
                session.name,
                session.role,
                session.csrf_token,
                session.created_us,
                session.expires_us,
            )

        await self._write(work)

    async def console_session(self, id_hash: str, now_us: int) -> ConsoleSession | None:
        async def work(conn: Any) -> ConsoleSession | None:
            row = await conn.fetchrow(SELECT_SESSION, id_hash, now_us)
            return None if row is None else ConsoleSession(*row)

        return await self._read(work)

    async def delete_console_session(self, id_hash: str) -> None:
        async def work(conn: Any) -> None:
            await conn.execute(DELETE_SESSION, id_hash)

        await self._write(work, idempotent=True)

    async def add_review(self, entry: ReviewEntry, clarified_since_us: int) -> ReviewEntry | None:
        async def work(conn: Any) -> ReviewEntry | None:
            await conn.execute(LOCK_REVIEW_PAIR, entry.to_key, entry.from_key)
            clarified = (
                await conn.fetchval(
                    REVIEW_CLARIFIED, entry.to_key, entry.from_key, clarified_since_us
                )
                is None
            )
            review_id = await conn.fetchval(
                INSERT_REVIEW,
                entry.created_us,
                entry.provider,
                entry.message_id,
                entry.from_key,
                entry.to_key,
                entry.text,
                entry.rule,
                entry.explanation,
                entry.language,
                clarified,
            )
            if review_id is None:
                return None
            return dataclasses.replace(entry, id=review_id, clarified=clarified, status="open")

        # Doing it twice is doing it once: the (provider, message id) is unique.
        return await self._write(work, idempotent=True)

    async def reviews(
        self, *, status: str | None, before_id: int | None, limit: int
    ) -> list[ReviewEntry]:
        async def work(conn: Any) -> list[ReviewEntry]:
            rows = await conn.fetch(SELECT_REVIEWS, status, before_id, limit)
            return [ReviewEntry(*row) for row in rows]

        return await self._read(work)

    async def resolve_review(
        self, review_id: int, status: str, actor: str, now_us: int
    ) -> ReviewEntry | None:
        async def work(conn: Any) -> ReviewEntry | None:
            row = await conn.fetchrow(RESOLVE_REVIEW, review_id, status, now_us, actor)
            return None if row is None else ReviewEntry(*row)

        return await self._write(work, idempotent=True)

    async def footer_sent(self, from_key: str, to_key: str) -> bool:
        async def work(conn: Any) -> bool:
            return await conn.fetchval(SELECT_FOOTER, to_key, from_key) is not None

        return await self._read(work)

    async def mark_footer_sent(self, from_key: str, to_key: str) -> None:
        async def work(conn: Any) -> None:
            await conn.execute(INSERT_FOOTER, to_key, from_key)

        await self._write(work, idempotent=True)

    async def set_service_numbers(self, service_key: str, number_keys: Sequence[str]) -> None:
        numbers = list(dict.fromkeys(number_keys))

        async def work(conn: Any) -> None:
            writes = await self._lock_clock(conn)
            await conn.execute(UPSERT_SERVICE_NUMBERS, service_key, numbers)
            writes.log_changes([], kind="services")
            await self._flush(conn, writes)

        await self._write(work, idempotent=True)

    async def service_of(self, number_key: str) -> str | None:
        async def work(conn: Any) -> str | None:
            value = await conn.fetchval(SELECT_SERVICE_OF, number_key)
            return None if value is None else str(value)

        return await self._read(work)

    async def service_numbers(self) -> dict[str, str]:
        async def work(conn: Any) -> dict[str, str]:
            return {str(r[0]): str(r[1]) for r in await conn.fetch(SELECT_SERVICE_NUMBERS)}

        return await self._read(work)

    async def get_value(self, name: str) -> str | None:
        async def work(conn: Any) -> str | None:
            value = await conn.fetchval(SELECT_VALUE, name)
            return None if value is None else str(value)

        return await self._read(work)

    async def set_value(self, name: str, value: str | None) -> None:
        async def work(conn: Any) -> None:
            if value is None:
                await conn.execute(DELETE_VALUE, name)
            else:
                await conn.execute(UPSERT_VALUE, name, value)

        await self._write(work, idempotent=True)

    # -- inbound and outbox ------------------------------------------------------------------

    async def record_inbound(
        self,
        provider: str,
        message_id: str,
        received_us: int,
        changes: Sequence[ConsentChange],
        outbox: Sequence[OutboxItem],
        follow_up: FollowUp | None = None,
    ) -> InboundOutcome:
        async def work(conn: Any) -> InboundOutcome:
            # The clock first, in every writing transaction: one lock order, no deadlock, and
            # outbox ids in commit order (an ordered queue is delivered in the order queued).
            writes = await self._lock_clock(conn)
            if await conn.fetchval(INSERT_INBOUND, provider, message_id, received_us) is None:
                return InboundOutcome(duplicate=True, applied=[])
            applied = await self._apply_locked(conn, writes, changes)
            await self._flush(conn, writes)
            items = list(outbox)
            if follow_up is not None:
                items += follow_up([a for a in applied if a.applied])
            ids = await self._queue(conn, items, received_us)
            return InboundOutcome(duplicate=False, applied=applied, outbox_ids=ids[: len(outbox)])

        return await self._write(work)

    async def due_outbox(self, now_us: int, limit: int) -> list[OutboxEntry]:
        async def work(conn: Any) -> list[OutboxEntry]:
            rows = await conn.fetch(SELECT_DUE_OUTBOX, now_us, limit)
            return [OutboxEntry(*row) for row in rows]

        return await self._read(work)

    async def claim_outbox(
        self, now_us: int, limit: int, lease_us: int, owner: str, stale_us: int
    ) -> list[OutboxEntry]:
        async def work(conn: Any) -> list[OutboxEntry]:
            alive_after = now_us - stale_us
            found = await conn.fetch(CLAIM_FREE, now_us, owner, alive_after, limit)
            found += await conn.fetch(CLAIM_HEADS, now_us, owner, alive_after)
            # Rows locked here and not taken are free again when the transaction ends.
            taken = heapq.nsmallest(limit, ((r[1], r[0]) for r in found))
            if not taken:
                return []
            ids = [entry_id for _, entry_id in taken]
            rows = await conn.fetch(LEASE_OUTBOX, ids, now_us + lease_us, owner)
            return sorted(
                (OutboxEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7])) for r in rows),
                key=lambda entry: (entry.not_before_us, entry.id),
            )

        # Not repeated after an unknown outcome: the entries may be leased to this owner already
        # and would not be handed out again before their lease runs out.
        return await self._write(work)

    async def outbox_heartbeat(self, owner: str, now_us: int) -> None:
        async def work(conn: Any) -> None:
            await conn.execute(OUTBOX_HEARTBEAT, owner, now_us)

        await self._write(work, idempotent=True)

    async def outbox_begin(self, entry_id: int) -> None:
        async def work(conn: Any) -> None:
            await conn.execute(OUTBOX_BEGIN, entry_id)

        await self._write(work, idempotent=True)

    async def _finish(self, entry_id: int, state: str, error: str | None) -> None:
        async def work(conn: Any) -> None:
            await conn.execute(OUTBOX_FINISH, entry_id, state, error)

        await self._write(work)

    async def outbox_done(self, entry_id: int) -> None:
        await self._finish(entry_id, "done", None)

    async def outbox_give_up(self, entry_id: int, error: str) -> None:
        await self._finish(entry_id, "given-up", error)

    async def outbox_retry(self, entry_id: int, not_before_us: int, error: str) -> None:
        async def work(conn: Any) -> None:
            await conn.execute(OUTBOX_RETRY, entry_id, not_before_us, error)

        await self._write(work)

    async def outbox_stats(self, now_us: int) -> tuple[int, int | None]:
        async def work(conn: Any) -> tuple[int, int | None]:
            row = await conn.fetchrow(OUTBOX_STATS)
            count, oldest = row[0], row[1]
            return int(count), None if oldest is None else now_us - int(oldest)

        return await self._read(work)

    # -- suppression lists -------------------------------------------------------------------

    async def stage_suppressions(self, name: str) -> int:
        async def work(conn: Any) -> int:
            value = await conn.fetchval(SELECT_LIST, name)
            return 0 if value is None else int(value)

        published = await self._read(work)
        # Whatever an unfinished import staged, or an interrupted clean-up left behind.
        await self._release_stale(name, published)
        return published + 1

    async def _release_stale(self, name: str, keep: int) -> None:
        """Delete the rows of ``name`` outside generation ``keep``, a batch per transaction
        (lookups never see them: they join on the published generation)."""

        async def work(conn: Any) -> int:
            status = await conn.execute(DELETE_STALE, name, keep, SUPPRESSION_DELETE_BATCH)
            return int(status.split()[-1])

        while await self._write(work, idempotent=True) == SUPPRESSION_DELETE_BATCH:
            pass

    async def add_suppressions(self, name: str, generation: int, to_keys: Sequence[str]) -> None:
        keys = list(to_keys)

        async def work(conn: Any) -> None:
            await conn.execute(INSERT_SUPPRESSIONS, keys, name, generation)

        await self._write(work, idempotent=True)

    async def publish_suppressions(
        self, name: str, generation: int, kind: SuppressionKind, listed_us: int, note: str | None
    ) -> SuppressionRefresh:
        async def work(conn: Any) -> SuppressionRefresh:
            row = await conn.fetchrow(SELECT_LIST_GENERATION, name)
            old_generation, old_members = (0, 0) if row is None else (int(row[0]), int(row[1]))
            counted = await conn.fetchrow(COUNT_STAGED, name, old_generation, generation)
            members, added = int(counted[0]), int(counted[1])
            imported_us = time.time_ns() // 1000
            await conn.execute(
                UPSERT_LIST, name, kind.value, listed_us, imported_us, members, note, generation
            )
            # The clock last, so consent writes wait for this commit only, not for the count.
            writes = await self._lock_clock(conn)
            writes.log_changes([], kind="all")
            await self._flush(conn, writes)
            listed = SuppressionList(name, kind, listed_us, imported_us, members, note)
            return SuppressionRefresh(listed, added, old_members - (members - added))

        refresh = await self._write(work)
        await self._release_stale(name, generation)
        return refresh

    async def drop_suppression_list(self, name: str) -> int:
        async def work(conn: Any) -> int:
            members = await conn.fetchval(DELETE_LIST, name)
            if members is not None:
                writes = await self._lock_clock(conn)
                writes.log_changes([], kind="all")
                await self._flush(conn, writes)
            return 0 if members is None else int(members)

        released = await self._write(work, idempotent=True)
        await self._release_stale(name, 0)  # generations start at 1: every row goes
        return released

    async def suppressions_of(self, to_key: str) -> list[Suppression]:
        async def work(conn: Any) -> list[Suppression]:
            rows = await conn.fetch(SELECT_SUPPRESSIONS_OF, to_key)
            return [Suppression(r[0], SuppressionKind(r[1]), int(r[2])) for r in rows]

        return await self._read(work)

    async def suppression_lists(self) -> list[SuppressionList]:
        async def work(conn: Any) -> list[SuppressionList]:
            return [
                SuppressionList(r[0], SuppressionKind(r[1]), int(r[2]), int(r[3]), int(r[4]), r[5])
                for r in await conn.fetch(SELECT_LISTS)
            ]

        return await self._read(work)

    async def suppression_members(self, name: str, *, after: str | None, limit: int) -> list[str]:
        async def work(conn: Any) -> list[str]:
            rows = await conn.fetch(SELECT_LIST_MEMBERS, name, after or "", limit)
            return [str(r[0]) for r in rows]

        return await self._read(work)

    # -- change feed -------------------------------------------------------------------------

    async def changes_since(self, cursor: int | None) -> ChangeBatch:
        async def work(conn: Any) -> ChangeBatch:
            if cursor is None:
                head = int(await conn.fetchval(CHANGE_HEAD))
                return ChangeBatch(head, flush_all=True, services=True, pairs=())
            rows = await conn.fetch(CHANGES_AFTER, cursor, CHANGE_LOG_BULK + 1)
            if not rows:
                oldest = await conn.fetchval(CHANGE_OLDEST)
                # Entries this reader never saw were pruned: it cannot know what changed.
                gap = oldest is not None and int(oldest) > cursor + 1
                return ChangeBatch(cursor, flush_all=gap, services=gap, pairs=())
            kinds = {row[1] for row in rows}
            return ChangeBatch(
                int(rows[-1][0]),
                flush_all="all" in kinds or len(rows) > CHANGE_LOG_BULK,
                services="services" in kinds,
                pairs=tuple((row[2], row[3]) for row in rows if row[1] == "pair"),
            )

        return await self._read(work)

    async def wait_for_changes(self, within: float) -> bool:
        """Wait for a NOTIFY of a committed change (True) or ``within`` seconds (False) on a
        connection of its own (LISTEN needs a session: never through a transaction-mode
        pooler). Raises :class:`StoreUnavailable` while that connection cannot be had or was
        lost, so the reader stops trusting its cache until it is back."""
        listener = self._listener
        if listener is None or listener.is_closed():
            self._listener = None
            listener = await self._listen()
        self._woken.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), within)
        if listener.is_closed():
            self._listener = None
            raise StoreUnavailable("the change-feed listener connection was lost")
        return self._woken.is_set()

    async def _listen(self) -> Any:
        options = self.options
        try:
            conn = await asyncpg.connect(
                options.dsn,
                timeout=options.connect_timeout_ms / 1000,
                statement_cache_size=0,
                server_settings=options.server_settings(),
            )
            self._listener_schema = str(await conn.fetchval(CURRENT_SCHEMA))
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
        except _DRIVER_ERRORS as exc:
            raise StoreUnavailable(f"change-feed listener: {_describe(exc)}") from exc
        conn.add_termination_listener(lambda _conn: self._woken.set())
        self._listener = conn
        return conn

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload == self._listener_schema:
            self._woken.set()

    async def prune_changes(self, before_us: int) -> None:
        async def work(conn: Any) -> None:
            await conn.execute(PRUNE_CHANGES, before_us)

        await self._write(work, idempotent=True)

    async def take_send_slots(
        self, requests: Sequence[SendSlotRequest], now_us: int
    ) -> list[int | None]:
        keys = sorted({request.to_key for request in requests})
        if not keys:
            return []

        async def work(conn: Any) -> list[int | None]:
            await conn.execute(LOCK_SEND_SLOTS, keys)
            slots: list[int | None] = []
            for request in requests:
                since = now_us - request.window_us
                sent = [
                    row[0] for row in await conn.fetch(COUNTED_SEND_SLOTS, request.to_key, since)
                ]
                if admits(sent, now_us, Cap(request.limit, request.window_us)):
                    slots.append(int(await conn.fetchval(INSERT_SEND_SLOT, request.to_key, now_us)))
                else:
                    slots.append(None)
            return slots

        return await self._write(work)

    async def release_send_slots(self, slot_ids: Sequence[int]) -> None:
        ids = list(slot_ids)
        if not ids:
            return

        async def work(conn: Any) -> None:
            await conn.execute(DELETE_SEND_SLOTS, ids)

        await self._write(work, idempotent=True)

    async def prune_send_slots(self, before_us: int, limit: int) -> int:
        async def work(conn: Any) -> int:
            status = await conn.execute(PRUNE_SEND_SLOTS, before_us, limit)
            return int(status.rpartition(" ")[2])

        return await self._write(work, idempotent=True)

    async def send_slot_times(self, to_key: str, since_us: int) -> list[int]:
        async def work(conn: Any) -> list[int]:
            return [int(row[0]) for row in await conn.fetch(SEND_SLOT_TIMES, to_key, since_us)]

        return await self._read(work)
