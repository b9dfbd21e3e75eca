-- 0002: forwarder accounts, on-behalf identities, local parts kept as written, and change
-- notifications so that running servers apply identity changes within a second.

-- A forwarder may submit with foreign envelope senders (rewritten by SRS); the headers of
-- its messages are the original author's and are not bound.
ALTER TABLE accounts ADD COLUMN forwarder boolean NOT NULL DEFAULT false;

-- false: "send as" (the address is used as the account's own: MAIL FROM, From:, Sender:).
-- true:  "send on behalf" (From: only, with an owned address in Sender:, which truefrom adds
--        when the client did not).
ALTER TABLE sender_identities ADD COLUMN on_behalf boolean NOT NULL DEFAULT false;

-- Local parts may now keep their case (policy local_part_case_sensitive); domains stay lower
-- case (A-labels for internationalized domains, U-labels are accepted and compared equal).
-- (0001's CHECK has a generated name; drop it by what it says.)
DO $$
DECLARE
    c text;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = 'sender_identities'::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) LIKE '%lower(identity)%'
    LOOP
        EXECUTE format('ALTER TABLE sender_identities DROP CONSTRAINT %I', c);
    END LOOP;
END;
$$;
ALTER TABLE sender_identities ADD CONSTRAINT sender_identities_identity_check
    CHECK (identity <> ''
           AND ((kind = 'address') = (identity LIKE '%_@_%'))
           AND lower(substring(identity FROM '[^@]*$')) = substring(identity FROM '[^@]*$'));

-- Every change to an account or its identities is announced on channel
-- "truefrom_identities" with the account's login (lower case) as payload; "" means
-- "everything" (TRUNCATE). The notification is sent when the transaction commits.
CREATE FUNCTION truefrom_notify_identity_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('truefrom_identities', '');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('truefrom_identities', lower(OLD.login));
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('truefrom_identities', lower(NEW.login));
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER accounts_notify AFTER INSERT OR UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION truefrom_notify_identity_change();
CREATE TRIGGER accounts_notify_truncate AFTER TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION truefrom_notify_identity_change();
CREATE TRIGGER sender_identities_notify AFTER INSERT OR UPDATE OR DELETE ON sender_identities
    FOR EACH ROW EXECUTE FUNCTION truefrom_notify_identity_change();
CREATE TRIGGER sender_identities_notify_truncate AFTER TRUNCATE ON sender_identities
    FOR EACH STATEMENT EXECUTE FUNCTION truefrom_notify_identity_change();
