-- 0001: accounts and the sender identities each account may use.
-- Applied by `truefrom db migrate` inside one transaction; never edit after release,
-- add 0002_... instead.

CREATE TABLE accounts (
    login         text PRIMARY KEY
                  CHECK (login <> '' AND login !~ '[[:space:][:cntrl:]]'),
    -- crypt(3) hash: yescrypt ($y$), sha512-crypt ($6$) or bcrypt ($2b$/$2y$).
    password_hash text NOT NULL CHECK (password_hash ~ '^\$(y|6|2[aby])\$'),
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Logins are matched case-insensitively: Alice@Example.test and alice@example.test are one.
CREATE UNIQUE INDEX accounts_login_lower ON accounts (lower(login));

CREATE TABLE sender_identities (
    id         bigserial PRIMARY KEY,
    login      text NOT NULL REFERENCES accounts (login) ON DELETE CASCADE ON UPDATE CASCADE,
    -- 'address': exactly this address (local part and domain compared case-insensitively);
    -- 'domain':  any local part at this domain.
    kind       text NOT NULL CHECK (kind IN ('address', 'domain')),
    -- lower case; an address is local@domain, a domain has no '@'.
    identity   text NOT NULL CHECK (identity = lower(identity) AND identity <> ''
                                    AND ((kind = 'address') = (identity LIKE '%_@_%'))),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (login, kind, identity)
);
CREATE INDEX sender_identities_identity ON sender_identities (identity);
