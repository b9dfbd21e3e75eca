-- SRS rules (issue: SRS). When a forwarder account submits mail whose envelope sender is an
-- address it does not own, truefrom looks up the rule for the sender's domain: 'rewrite'
-- (the default when no rule matches) relays it with an SRS0/SRS1 address in [srs] domain,
-- 'refuse' answers 550 5.7.1 at MAIL FROM, 'pass' relays the sender unchanged (a partner
-- whose SPF record includes the provider). A rule's domain matches the sender's domain and
-- its subdomains; login NULL makes it global, otherwise it applies to that account only.
-- The most specific rule wins: the longest matching domain, then the account's own rule
-- over a global one.
CREATE TABLE srs_rules (
    id         bigserial PRIMARY KEY,
    domain     text NOT NULL CHECK (domain <> '' AND domain = lower(domain)
                                    AND domain !~ '[@[:space:][:cntrl:]]'),
    action     text NOT NULL CHECK (action IN ('rewrite', 'refuse', 'pass')),
    login      text REFERENCES accounts (login) ON DELETE CASCADE ON UPDATE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX srs_rules_one_per_scope ON srs_rules (domain, coalesce(login, ''));

-- Every change is announced on channel "truefrom_srs_rules"; running servers reload the
-- rules when the transaction commits.
CREATE FUNCTION truefrom_notify_srs_rule_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('truefrom_srs_rules', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER srs_rules_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON srs_rules
    FOR EACH STATEMENT EXECUTE FUNCTION truefrom_notify_srs_rule_change();
