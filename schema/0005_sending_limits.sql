-- 0005: per-account sending limits (abuse controls). [limits] in the config gives the
-- defaults; rows here override them: one database default (scope 'default'), per domain
-- (the login's domain and its parents) and per account. NULL: not set at this level (the
-- next level decides); 0: no limit. The most specific value wins, key by key.
CREATE TABLE sending_limits (
    id                     bigserial PRIMARY KEY,
    scope                  text NOT NULL CHECK (scope IN ('default', 'domain', 'account')),
    domain                 text CHECK (domain <> '' AND domain = lower(domain)
                                       AND domain !~ '[@[:space:][:cntrl:]]'),
    login                  text REFERENCES accounts (login) ON DELETE CASCADE ON UPDATE CASCADE,
    messages_per_hour      integer CHECK (messages_per_hour >= 0),
    messages_per_day       integer CHECK (messages_per_day >= 0),
    recipients_per_message integer CHECK (recipients_per_message >= 0),
    recipients_per_day     integer CHECK (recipients_per_day >= 0),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CHECK ((scope = 'default' AND domain IS NULL AND login IS NULL)
           OR (scope = 'domain' AND domain IS NOT NULL AND login IS NULL)
           OR (scope = 'account' AND login IS NOT NULL AND domain IS NULL))
);

CREATE UNIQUE INDEX sending_limits_one_per_scope
    ON sending_limits (scope, coalesce(domain, ''), lower(coalesce(login, '')));

-- Every change is announced on channel "truefrom_sending_limits"; running servers reload
-- the rules when the transaction commits.
CREATE FUNCTION truefrom_notify_sending_limit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('truefrom_sending_limits', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER sending_limits_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON sending_limits FOR EACH STATEMENT EXECUTE FUNCTION truefrom_notify_sending_limit_change();

-- What the accounts sent, per 5-minute slot: every node adds its increments in batches
-- (INSERT ... ON CONFLICT DO UPDATE) and reads the totals back. `login` is the account's
-- login as stored in accounts; `slot` the slot's start in seconds since 1970 (UTC), a
-- multiple of 300. A negative increment is a reservation given back. Rows older than a day
-- are deleted by the servers. Deleting an account's rows resets its counts
-- (`truefrom limits reset LOGIN`).
CREATE TABLE sending_counts (
    login      text NOT NULL,
    slot       bigint NOT NULL CHECK (slot % 300 = 0),
    messages   bigint NOT NULL DEFAULT 0,
    recipients bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (login, slot)
);

CREATE INDEX sending_counts_slot ON sending_counts (slot);
