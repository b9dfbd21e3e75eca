-- DKIM signing keys (issue: DKIM signing). One row per key; the private key lives in the
-- file key_path (mode 0600, owned by the user truefrom runs as), never in the database.
-- public_key is the p= value of the key's DNS TXT record (selector._domainkey.domain).
-- A key is generated as 'pending' (publish its record first), becomes 'active' (it signs)
-- and ends 'retired'. At most one key per domain and algorithm is active: an RSA and an
-- Ed25519 key together give a dual signature.
CREATE TABLE dkim_keys (
    id           bigserial PRIMARY KEY,
    domain       text NOT NULL CHECK (domain <> '' AND domain = lower(domain)),
    selector     text NOT NULL
        CHECK (selector ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$'),
    algorithm    text NOT NULL CHECK (algorithm IN ('rsa-sha256', 'ed25519-sha256')),
    key_path     text NOT NULL CHECK (key_path LIKE '/%'),
    public_key   text NOT NULL CHECK (public_key ~ '^[A-Za-z0-9+/]+=*$'),
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'active', 'retired')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    retired_at   timestamptz,
    UNIQUE (domain, selector)
);

CREATE UNIQUE INDEX dkim_keys_one_active_per_algorithm
    ON dkim_keys (domain, algorithm) WHERE state = 'active';

-- Every change is announced on channel "truefrom_dkim_keys" (payload: the domain, "" on
-- TRUNCATE); a running server reloads its keys when the transaction commits.
CREATE FUNCTION truefrom_notify_dkim_key_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('truefrom_dkim_keys', '');
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('truefrom_dkim_keys', OLD.domain);
    ELSE
        PERFORM pg_notify('truefrom_dkim_keys', NEW.domain);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER dkim_keys_notify AFTER INSERT OR UPDATE OR DELETE ON dkim_keys
    FOR EACH ROW EXECUTE FUNCTION truefrom_notify_dkim_key_change();
CREATE TRIGGER dkim_keys_notify_truncate AFTER TRUNCATE ON dkim_keys
    FOR EACH STATEMENT EXECUTE FUNCTION truefrom_notify_dkim_key_change();
