-- payalloc ledger, migration 2. Shipped: never edit; add a new migration instead.
--
-- Same rules, cheaper to enforce (measured with SQLite 3.40 on the 20,000-client bench ledger):
-- * A CHECK of the form `x IN ('a', 'b', 'c')` builds a temporary table every time a row is
--   written (about 1.4 us each): a quarter of an import's time. Each such CHECK becomes the
--   equivalent `x = 'a' OR x = 'b' OR x = 'c'` (NULL passes both forms alike). SQLite cannot
--   alter a CHECK, so the five tables written in bulk are rebuilt (the documented procedure:
--   new table, copy, drop, rename; run with foreign_keys OFF, then foreign_key_check).
-- * The remittance guard reads the payment and the charge once each instead of three times.
-- * No index of remittances by client: a client's remittances are found through the client's
--   payments (payments_client, then remittances_payment), one index fewer to keep per remittance.
-- * The caches of job remittances are added by the job, one update per payment and per charge
--   of a chunk (ledger/job.py add_to_caches): the per-row trigger cost ~11 us per remittance,
--   more than half of the job. Manual remittances keep the trigger. Over-allocation is still refused by
--   the database either way: the CHECK `applied_cents <= amount_cents` on payments and charges.
--
-- Every trigger is dropped first and created again at the end: the rebuilt tables must not be
-- referenced by a trigger while they are renamed.

DROP TRIGGER remittances_guard_insert;
DROP TRIGGER remittances_applied;
DROP TRIGGER remittances_guard_update;
DROP TRIGGER remittances_reversed;
DROP TRIGGER charges_guard_update;
DROP TRIGGER payments_guard_update;
DROP TRIGGER payments_mark_client_update;
DROP TRIGGER events_mark_client;
DROP TRIGGER events_guard_update;
DROP TRIGGER remittances_no_delete;
DROP TRIGGER payments_no_delete;
DROP TRIGGER charges_no_delete;
DROP TRIGGER clients_no_delete;
DROP TRIGGER events_no_delete;
DROP TRIGGER journal_lines_no_delete;
DROP TRIGGER journal_lines_no_update;
DROP TRIGGER audit_no_delete;
DROP TRIGGER audit_no_update;

-- events -------------------------------------------------------------------------------------
CREATE TABLE events_v2 (
    id             INTEGER PRIMARY KEY,
    event_key      TEXT NOT NULL UNIQUE CHECK (length(event_key) BETWEEN 1 AND 64),
    client_id      INTEGER NOT NULL REFERENCES clients (id),
    scheduled_date TEXT NOT NULL CHECK (scheduled_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    -- 'deleted' is how an event is deleted: nothing is ever removed from the ledger
    status         TEXT NOT NULL DEFAULT 'scheduled'
                   CHECK (status = 'scheduled' OR status = 'done' OR status = 'deleted')
) STRICT;
INSERT INTO events_v2 (id, event_key, client_id, scheduled_date, status)
SELECT id, event_key, client_id, scheduled_date, status FROM events;
DROP TABLE events;
ALTER TABLE events_v2 RENAME TO events;
CREATE INDEX events_client ON events (client_id);

-- charges ------------------------------------------------------------------------------------
CREATE TABLE charges_v2 (
    id            INTEGER PRIMARY KEY,
    charge_key    TEXT NOT NULL UNIQUE CHECK (length(charge_key) BETWEEN 1 AND 64),
    client_id     INTEGER NOT NULL REFERENCES clients (id),
    service_date  TEXT NOT NULL CHECK (service_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    amount_cents  INTEGER NOT NULL CHECK (amount_cents > 0),
    payer         TEXT NOT NULL CHECK (payer = 'self_pay' OR payer = 'patient_resp' OR payer = 'insurance'),
    service_code  TEXT,
    description   TEXT,
    event_id      INTEGER REFERENCES events (id),
    -- cache: sum of the charge's non-reversed remittances (verified by check)
    applied_cents INTEGER NOT NULL DEFAULT 0 CHECK (applied_cents >= 0 AND applied_cents <= amount_cents),
    CHECK (payer <> 'insurance' OR applied_cents = 0)
) STRICT;
INSERT INTO charges_v2 (id, charge_key, client_id, service_date, amount_cents, payer, service_code, description,
                        event_id, applied_cents)
SELECT id, charge_key, client_id, service_date, amount_cents, payer, service_code, description,
       event_id, applied_cents FROM charges;
DROP TABLE charges;
ALTER TABLE charges_v2 RENAME TO charges;
CREATE INDEX charges_client ON charges (client_id, service_date, id);
CREATE INDEX charges_event ON charges (event_id) WHERE event_id IS NOT NULL;

-- payments -----------------------------------------------------------------------------------
CREATE TABLE payments_v2 (
    id               INTEGER PRIMARY KEY,
    payment_key      TEXT NOT NULL UNIQUE CHECK (length(payment_key) BETWEEN 1 AND 64),
    client_id        INTEGER NOT NULL REFERENCES clients (id),
    received_date    TEXT NOT NULL CHECK (received_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    amount_cents     INTEGER NOT NULL CHECK (amount_cents > 0),
    apply_to         TEXT NOT NULL CHECK (apply_to = 'oldest' OR apply_to = 'specific' OR apply_to = 'event'),
    -- apply_to as entered: re-importing the original row stays "unchanged" after the mode changed
    entered_apply_to TEXT NOT NULL
                     CHECK (entered_apply_to = 'oldest' OR entered_apply_to = 'specific'
                            OR entered_apply_to = 'event'),
    event_id         INTEGER REFERENCES events (id),
    method           TEXT CHECK (method = 'cash' OR method = 'check' OR method = 'card' OR method = 'eft'
                                 OR method = 'other'),
    reference        TEXT,
    status           TEXT NOT NULL CHECK (status = 'ready' OR status = 'pending' OR status = 'void'),
    note             TEXT,
    payer_name       TEXT,
    -- cache: sum of the payment's non-reversed remittances (verified by check)
    applied_cents    INTEGER NOT NULL DEFAULT 0 CHECK (applied_cents >= 0 AND applied_cents <= amount_cents),
    CHECK (apply_to <> 'event' OR event_id IS NOT NULL),
    CHECK (entered_apply_to <> 'event' OR event_id IS NOT NULL)
) STRICT;
INSERT INTO payments_v2 (id, payment_key, client_id, received_date, amount_cents, apply_to, entered_apply_to,
                         event_id, method, reference, status, note, payer_name, applied_cents)
SELECT id, payment_key, client_id, received_date, amount_cents, apply_to, entered_apply_to,
       event_id, method, reference, status, note, payer_name, applied_cents FROM payments;
DROP TABLE payments;
ALTER TABLE payments_v2 RENAME TO payments;
CREATE INDEX payments_client ON payments (client_id, received_date, id);
CREATE INDEX payments_open ON payments (client_id) WHERE status = 'ready' AND applied_cents < amount_cents;
CREATE INDEX payments_event ON payments (event_id) WHERE event_id IS NOT NULL;

-- remittances --------------------------------------------------------------------------------
CREATE TABLE remittances_v2 (
    id              INTEGER PRIMARY KEY,
    payment_id      INTEGER NOT NULL REFERENCES payments (id),
    charge_id       INTEGER NOT NULL REFERENCES charges (id),
    client_id       INTEGER NOT NULL REFERENCES clients (id),
    amount_cents    INTEGER NOT NULL CHECK (amount_cents > 0),
    status          TEXT NOT NULL DEFAULT 'ready'
                    CHECK (status = 'ready' OR status = 'posted' OR status = 'reversed'),
    source          TEXT NOT NULL CHECK (source = 'job' OR source = 'manual'),
    rule            TEXT CHECK (rule = 'oldest' OR rule = 'event'),  -- the job's rule; NULL when manual
    staff           TEXT,                                            -- who applied it; NULL for the job
    job_run_id      INTEGER REFERENCES job_runs (id),
    created_at      TEXT NOT NULL,
    replaces_id     INTEGER REFERENCES remittances (id),             -- rest of a partly unapplied one
    posted_batch_id INTEGER REFERENCES posting_batches (id),
    reversed_at     TEXT,
    reversed_by     TEXT,
    reversal_reason TEXT,
    CHECK ((source = 'job') = (job_run_id IS NOT NULL AND staff IS NULL AND rule IS NOT NULL)),
    CHECK ((source = 'manual') = (staff IS NOT NULL AND rule IS NULL)),
    CHECK ((status = 'reversed') = (reversed_at IS NOT NULL AND reversal_reason IS NOT NULL)),
    CHECK (status = 'ready' OR status = 'reversed' OR posted_batch_id IS NOT NULL)
) STRICT;
INSERT INTO remittances_v2 (id, payment_id, charge_id, client_id, amount_cents, status, source, rule, staff,
                            job_run_id, created_at, replaces_id, posted_batch_id, reversed_at, reversed_by,
                            reversal_reason)
SELECT id, payment_id, charge_id, client_id, amount_cents, status, source, rule, staff,
       job_run_id, created_at, replaces_id, posted_batch_id, reversed_at, reversed_by,
       reversal_reason FROM remittances;
DROP TABLE remittances;  -- and its indexes, remittances_client among them
ALTER TABLE remittances_v2 RENAME TO remittances;
CREATE INDEX remittances_payment ON remittances (payment_id);
CREATE INDEX remittances_charge ON remittances (charge_id);
CREATE INDEX remittances_ready ON remittances (id) WHERE status = 'ready';

-- journal lines ------------------------------------------------------------------------------
CREATE TABLE journal_lines_v2 (
    id            INTEGER PRIMARY KEY,
    batch_id      INTEGER NOT NULL REFERENCES posting_batches (id),
    remittance_id INTEGER NOT NULL REFERENCES remittances (id),
    entry         TEXT NOT NULL CHECK (entry = 'post' OR entry = 'reverse'),
    account       TEXT NOT NULL CHECK (length(account) > 0),
    debit_cents   INTEGER NOT NULL CHECK (debit_cents >= 0),
    credit_cents  INTEGER NOT NULL CHECK (credit_cents >= 0),
    CHECK ((debit_cents > 0) <> (credit_cents > 0))
) STRICT;
INSERT INTO journal_lines_v2 (id, batch_id, remittance_id, entry, account, debit_cents, credit_cents)
SELECT id, batch_id, remittance_id, entry, account, debit_cents, credit_cents FROM journal_lines;
DROP TABLE journal_lines;
ALTER TABLE journal_lines_v2 RENAME TO journal_lines;
CREATE INDEX journal_lines_remittance ON journal_lines (remittance_id);
CREATE INDEX journal_lines_batch ON journal_lines (batch_id);

-- ---------------------------------------------------------------------------------------
-- The database is the second lock on the rules (the Python code checks first).

-- Rule 1 and the definition of a remittance: one ready payment, one self-pay charge, one client.
-- A job chunk's rows are checked against the caches as they were before the chunk; the
-- CHECK on applied_cents catches what they add up to when the job adds them to the caches.
CREATE TRIGGER remittances_guard_insert BEFORE INSERT ON remittances
BEGIN
    SELECT CASE
        WHEN p.status IS NOT 'ready' THEN RAISE(ABORT, 'remittance refused: payment is not ready')
        WHEN p.client_id IS NOT NEW.client_id
        THEN RAISE(ABORT, 'remittance refused: payment, charge and remittance must have the same client')
        WHEN p.applied_cents + NEW.amount_cents > p.amount_cents
        THEN RAISE(ABORT, 'remittance refused: over-allocation of the payment')
    END FROM (SELECT NULL) LEFT JOIN payments p ON p.id = NEW.payment_id;
    SELECT CASE
        WHEN c.client_id IS NOT NEW.client_id
        THEN RAISE(ABORT, 'remittance refused: payment, charge and remittance must have the same client')
        WHEN c.payer = 'insurance' THEN RAISE(ABORT, 'remittance refused: insurance charges are never allocated')
        WHEN c.applied_cents + NEW.amount_cents > c.amount_cents
        THEN RAISE(ABORT, 'remittance refused: over-allocation of the charge')
    END FROM (SELECT NULL) LEFT JOIN charges c ON c.id = NEW.charge_id;
    SELECT RAISE(ABORT, 'remittance refused: a new remittance starts ready')
     WHERE NEW.status <> 'ready' OR NEW.reversed_at IS NOT NULL OR NEW.posted_batch_id IS NOT NULL;
END;

CREATE TRIGGER remittances_applied AFTER INSERT ON remittances WHEN NEW.source = 'manual'
BEGIN
    UPDATE payments SET applied_cents = applied_cents + NEW.amount_cents WHERE id = NEW.payment_id;
    UPDATE charges SET applied_cents = applied_cents + NEW.amount_cents WHERE id = NEW.charge_id;
END;

-- Only ready -> posted, ready -> reversed, posted -> reversed; nothing else of a remittance changes.
CREATE TRIGGER remittances_guard_update BEFORE UPDATE ON remittances
BEGIN
    SELECT RAISE(ABORT, 'remittances are append-only: only their status may change')
     WHERE NEW.id IS NOT OLD.id OR NEW.payment_id IS NOT OLD.payment_id
        OR NEW.charge_id IS NOT OLD.charge_id OR NEW.client_id IS NOT OLD.client_id
        OR NEW.amount_cents IS NOT OLD.amount_cents OR NEW.source IS NOT OLD.source
        OR NEW.rule IS NOT OLD.rule OR NEW.staff IS NOT OLD.staff
        OR NEW.job_run_id IS NOT OLD.job_run_id OR NEW.created_at IS NOT OLD.created_at
        OR NEW.replaces_id IS NOT OLD.replaces_id;
    SELECT RAISE(ABORT, 'remittance status change refused')
     WHERE NOT (NEW.status = OLD.status AND NEW.posted_batch_id IS OLD.posted_batch_id
                AND NEW.reversed_at IS OLD.reversed_at AND NEW.reversed_by IS OLD.reversed_by
                AND NEW.reversal_reason IS OLD.reversal_reason)
       AND NOT (OLD.status = 'ready' AND NEW.status = 'posted' AND OLD.posted_batch_id IS NULL)
       AND NOT ((OLD.status = 'ready' OR OLD.status = 'posted') AND NEW.status = 'reversed'
                AND NEW.posted_batch_id IS OLD.posted_batch_id);
END;

CREATE TRIGGER remittances_reversed AFTER UPDATE OF status ON remittances
WHEN NEW.status = 'reversed' AND OLD.status <> 'reversed'
BEGIN
    UPDATE payments SET applied_cents = applied_cents - OLD.amount_cents WHERE id = OLD.payment_id;
    UPDATE charges SET applied_cents = applied_cents - OLD.amount_cents WHERE id = OLD.charge_id;
    UPDATE clients SET job_pending = 1 WHERE id = OLD.client_id AND job_pending = 0;
END;

-- Charges and payments are immutable but for their caches and the payment's state. The
-- guards fire only when a guarded column is written, so cache updates do not pay for them.
CREATE TRIGGER charges_guard_update
BEFORE UPDATE OF id, charge_key, client_id, service_date, amount_cents, payer, event_id ON charges
BEGIN
    SELECT RAISE(ABORT, 'charges are immutable')
     WHERE NEW.id IS NOT OLD.id OR NEW.charge_key IS NOT OLD.charge_key
        OR NEW.client_id IS NOT OLD.client_id OR NEW.service_date IS NOT OLD.service_date
        OR NEW.amount_cents IS NOT OLD.amount_cents OR NEW.payer IS NOT OLD.payer
        OR NEW.event_id IS NOT OLD.event_id;
END;

CREATE TRIGGER payments_guard_update
BEFORE UPDATE OF id, payment_key, client_id, received_date, amount_cents, event_id, entered_apply_to, status
ON payments
BEGIN
    SELECT RAISE(ABORT, 'payments are immutable but for their status and apply-to')
     WHERE NEW.id IS NOT OLD.id OR NEW.payment_key IS NOT OLD.payment_key
        OR NEW.client_id IS NOT OLD.client_id OR NEW.received_date IS NOT OLD.received_date
        OR NEW.amount_cents IS NOT OLD.amount_cents OR NEW.event_id IS NOT OLD.event_id
        OR NEW.entered_apply_to IS NOT OLD.entered_apply_to;
    SELECT RAISE(ABORT, 'payment status change refused')
     WHERE NEW.status <> OLD.status
       AND NOT (OLD.status = 'pending' AND (NEW.status = 'ready' OR NEW.status = 'void'))
       AND NOT (OLD.status = 'ready' AND NEW.status = 'void');
    SELECT RAISE(ABORT, 'a void payment keeps no remittances')
     WHERE NEW.status = 'void' AND NEW.applied_cents <> 0;
END;

-- What may give the job work marks the client, so an idle run costs nothing. Inserts of
-- charges and payments mark their clients in bulk (ledger/clients.py mark_for_job): a
-- trigger per inserted row would cost ~4 us and double the time of a large import.
CREATE TRIGGER payments_mark_client_update AFTER UPDATE OF status, apply_to ON payments
WHEN NEW.status = 'ready' AND NEW.apply_to <> 'specific'
BEGIN
    UPDATE clients SET job_pending = 1 WHERE id = NEW.client_id AND job_pending = 0;
END;

CREATE TRIGGER events_mark_client AFTER UPDATE OF status ON events WHEN NEW.status <> OLD.status
BEGIN
    UPDATE clients SET job_pending = 1 WHERE id = NEW.client_id AND job_pending = 0;
END;

CREATE TRIGGER events_guard_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'event status change refused')
     WHERE NEW.status <> OLD.status
       AND NOT (OLD.status = 'scheduled' AND (NEW.status = 'done' OR NEW.status = 'deleted'))
       AND NOT (OLD.status = 'done' AND NEW.status = 'deleted');
    SELECT RAISE(ABORT, 'an event keeps its id and client')
     WHERE NEW.id IS NOT OLD.id OR NEW.event_key IS NOT OLD.event_key OR NEW.client_id IS NOT OLD.client_id;
END;

-- Rule 7: nothing is ever deleted. Corrections are new rows.
CREATE TRIGGER remittances_no_delete BEFORE DELETE ON remittances
BEGIN SELECT RAISE(ABORT, 'remittances are never deleted: unapply reverses them'); END;
CREATE TRIGGER payments_no_delete BEFORE DELETE ON payments
BEGIN SELECT RAISE(ABORT, 'payments are never deleted: void them'); END;
CREATE TRIGGER charges_no_delete BEFORE DELETE ON charges
BEGIN SELECT RAISE(ABORT, 'charges are never deleted'); END;
CREATE TRIGGER clients_no_delete BEFORE DELETE ON clients
BEGIN SELECT RAISE(ABORT, 'clients are never deleted'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are never deleted: their status becomes deleted'); END;
CREATE TRIGGER journal_lines_no_delete BEFORE DELETE ON journal_lines
BEGIN SELECT RAISE(ABORT, 'journal lines are never deleted: reversing lines correct them'); END;
CREATE TRIGGER journal_lines_no_update BEFORE UPDATE ON journal_lines
BEGIN SELECT RAISE(ABORT, 'journal lines are never edited'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is never deleted'); END;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is never edited'); END;
