#include "auth/identity_store.hpp"

#include <chrono>

#include "auth/store_impl.hpp"

#include "auth/identity_syntax.hpp"
#include "schema/migrations.hpp"

namespace truefrom::auth {
namespace {

// Serializes concurrent `db migrate` runs (an arbitrary, fixed advisory lock key).
constexpr long long kMigrationLockKey = 0x7472756566726f6dLL;  // "truefrom"

class StoreCategory : public std::error_category {
 public:
  const char* name() const noexcept override { return "truefrom.store"; }
  std::string message(int ev) const override {
    switch (static_cast<StoreErrc>(ev)) {
      case StoreErrc::kUnavailable:
        return "the database is unavailable";
      case StoreErrc::kNotFound:
        return "not found";
      case StoreErrc::kExists:
        return "already exists";
      case StoreErrc::kSchemaMissing:
        return "the database schema is missing or outdated";
      case StoreErrc::kSchemaTooNew:
        return "the database schema is newer than this truefrom";
      case StoreErrc::kInvalid:
        return "invalid value";
    }
    return "unknown store error";
  }
};

SenderIdentity::Kind kind_from(const std::string& s) {
  return s == "domain" ? SenderIdentity::Kind::kDomain : SenderIdentity::Kind::kAddress;
}

// A row as the policy compares it: the domain in A-label form, whatever SQL stored.
SenderIdentity stored_identity(std::int64_t id, const std::string& kind, const std::string& value,
                               bool on_behalf) {
  SenderIdentity out{kind_from(kind), value, on_behalf, id};
  const auto at = value.rfind('@');
  const std::string domain = at == std::string::npos ? value : value.substr(at + 1);
  if (const auto normalized = normalize_domain(domain)) {
    out.value = at == std::string::npos ? *normalized : value.substr(0, at + 1) + *normalized;
  }
  return out;
}

const char* kind_name(SenderIdentity::Kind k) {
  return k == SenderIdentity::Kind::kDomain ? "domain" : "address";
}

int latest_version() {
  const auto& all = schema::migrations();
  return all.empty() ? 0 : all.back().version;
}

}  // namespace

const std::error_category& store_category() {
  static const StoreCategory kCategory;
  return kCategory;
}

IdentityStore::IdentityStore(std::string conninfo) : impl_(std::make_unique<Impl>()) {
  impl_->conninfo = std::move(conninfo);
}

IdentityStore::~IdentityStore() = default;

StoreStatus IdentityStore::find_for_auth(const std::string& login,
                                         std::optional<AccountIdentities>& out) {
  out.reset();
  return impl_->run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    const pqxx::result r = tx.exec_params(
        "SELECT a.login, a.password_hash, a.enabled, a.forwarder, s.id, s.kind, s.identity, "
        "s.on_behalf, a.suspended_at IS NOT NULL, coalesce(a.suspended_reason, ''), "
        "coalesce(to_char(a.suspended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), '') "
        "FROM accounts a LEFT JOIN sender_identities s ON s.login = a.login "
        "WHERE lower(a.login) = lower($1) ORDER BY s.id",
        login);
    if (r.empty()) return StoreStatus{};
    AccountIdentities found;
    found.account.login = r[0][0].as<std::string>();
    found.account.password_hash = r[0][1].as<std::string>();
    found.account.enabled = r[0][2].as<bool>();
    found.account.forwarder = r[0][3].as<bool>();
    found.account.suspended = r[0][8].as<bool>();
    found.account.suspended_reason = r[0][9].as<std::string>();
    found.account.suspended_at = r[0][10].as<std::string>();
    for (const auto& row : r) {
      if (row[4].is_null()) continue;
      found.identities.push_back(stored_identity(row[4].as<std::int64_t>(),
                                                 row[5].as<std::string>(), row[6].as<std::string>(),
                                                 row[7].as<bool>()));
    }
    out = std::move(found);
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::check_schema() {
  return impl_->run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    const auto r = tx.exec("SELECT to_regclass('schema_migrations') IS NOT NULL");
    if (!r[0][0].as<bool>()) {
      return fail(StoreErrc::kSchemaMissing, "the database has no truefrom schema yet");
    }
    const int have =
        tx.exec("SELECT coalesce(max(version), 0) FROM schema_migrations")[0][0].as<int>();
    if (have < latest_version()) {
      return fail(StoreErrc::kSchemaMissing, "the schema is at version " + std::to_string(have) +
                                                 ", this truefrom needs " +
                                                 std::to_string(latest_version()));
    }
    if (have > latest_version()) {
      return fail(StoreErrc::kSchemaTooNew, "the schema is at version " + std::to_string(have) +
                                                ", newer than this truefrom knows (" +
                                                std::to_string(latest_version()) +
                                                "); upgrade truefrom");
    }
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::migrate(int& applied) {
  applied = 0;
  return impl_->run([&](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLockKey);
    tx.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())");
    const int have =
        tx.exec("SELECT coalesce(max(version), 0) FROM schema_migrations")[0][0].as<int>();
    if (have > latest_version()) {
      return fail(StoreErrc::kSchemaTooNew, "the schema is at version " + std::to_string(have) +
                                                ", newer than this truefrom knows");
    }
    int count = 0;
    for (const auto& m : schema::migrations()) {
      if (m.version <= have) continue;
      tx.exec(std::string(m.sql));
      tx.exec_params("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version,
                     std::string(m.name));
      ++count;
    }
    tx.commit();
    applied = count;
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::add_account(const std::string& login, const std::string& hash) {
  return impl_->run([&](pqxx::connection& c) {
    pqxx::work tx(c);
    const auto r =
        tx.exec_params("SELECT login FROM accounts WHERE lower(login) = lower($1)", login);
    if (!r.empty()) {
      return fail(StoreErrc::kExists, "account " + r[0][0].as<std::string>() + " already exists");
    }
    tx.exec_params("INSERT INTO accounts (login, password_hash) VALUES ($1, $2)", login, hash);
    tx.commit();
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::set_password(const std::string& login, const std::string& hash) {
  return impl_->change_account(
      login,
      "UPDATE accounts SET password_hash = $2, updated_at = now() WHERE lower(login) = lower($1)",
      hash);
}

StoreStatus IdentityStore::set_enabled(const std::string& login, bool enabled) {
  return impl_->change_account(
      login, "UPDATE accounts SET enabled = $2, updated_at = now() WHERE lower(login) = lower($1)",
      enabled);
}

StoreStatus IdentityStore::remove_account(const std::string& login) {
  return impl_->change_account(login, "DELETE FROM accounts WHERE lower(login) = lower($1)");
}

StoreStatus IdentityStore::set_forwarder(const std::string& login, bool forwarder) {
  return impl_->change_account(
      login,
      "UPDATE accounts SET forwarder = $2, updated_at = now() WHERE lower(login) = lower($1)",
      forwarder);
}

StoreStatus IdentityStore::suspend(const std::string& login, const std::string& reason,
                                   bool* already) {
  if (already) *already = false;
  return impl_->run([&](pqxx::connection& c) {
    pqxx::work tx(c);
    const auto r = tx.exec_params(
        "SELECT suspended_at IS NOT NULL FROM accounts WHERE lower(login) = lower($1) FOR UPDATE",
        login);
    if (r.empty()) return fail(StoreErrc::kNotFound, "no account " + login);
    if (r[0][0].as<bool>()) {
      if (already) *already = true;
      return StoreStatus{};
    }
    tx.exec_params(
        "UPDATE accounts SET suspended_at = now(), suspended_reason = $2, updated_at = now() "
        "WHERE lower(login) = lower($1)",
        login, reason);
    tx.commit();
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::resume(const std::string& login) {
  return impl_->change_account(
      login,
      "UPDATE accounts SET suspended_at = NULL, suspended_reason = NULL, updated_at = now() "
      "WHERE lower(login) = lower($1)");
}

StoreStatus IdentityStore::list_accounts(std::vector<Account>& out) {
  out.clear();
  return impl_->run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    for (const auto& row : tx.exec(
             "SELECT login, enabled, forwarder, suspended_at IS NOT NULL, "
             "coalesce(suspended_reason, ''), "
             "coalesce(to_char(suspended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), '') "
             "FROM accounts ORDER BY lower(login)")) {
      out.push_back({row[0].as<std::string>(), {}, row[1].as<bool>(), row[2].as<bool>(),
                     row[3].as<bool>(), row[4].as<std::string>(), row[5].as<std::string>()});
    }
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::add_sender(const std::string& login, const SenderIdentity& identity,
                                      bool* updated) {
  if (updated) *updated = false;
  return impl_->run([&](pqxx::connection& c) {
    pqxx::work tx(c);
    const auto acc =
        tx.exec_params("SELECT login FROM accounts WHERE lower(login) = lower($1)", login);
    if (acc.empty()) return fail(StoreErrc::kNotFound, "no account " + login);
    const std::string stored_login = acc[0][0].as<std::string>();
    // A second add of the same identity with the other delegation form changes the row.
    const auto r = tx.exec_params(
        "INSERT INTO sender_identities (login, kind, identity, on_behalf) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (login, kind, identity) DO UPDATE SET on_behalf = EXCLUDED.on_behalf "
        "WHERE sender_identities.on_behalf <> EXCLUDED.on_behalf "
        "RETURNING (xmax = 0) AS inserted",
        stored_login, kind_name(identity.kind), identity.value, identity.on_behalf);
    if (r.empty()) {
      return fail(StoreErrc::kExists, stored_login + " already has " + identity.value +
                                          (identity.on_behalf ? " (on behalf)" : " (send as)"));
    }
    if (updated) *updated = !r[0][0].as<bool>();
    tx.commit();
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::remove_sender(const std::string& login, const SenderIdentity& identity) {
  return impl_->run([&](pqxx::connection& c) {
    pqxx::work tx(c);
    const auto r = tx.exec_params(
        "DELETE FROM sender_identities WHERE login IN "
        "(SELECT login FROM accounts WHERE lower(login) = lower($1)) AND kind = $2 AND "
        "lower(identity) = lower($3)",
        login, kind_name(identity.kind), identity.value);
    if (r.affected_rows() == 0) {
      return fail(StoreErrc::kNotFound, login + " has no sender identity " + identity.value);
    }
    tx.commit();
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::list_senders(const std::optional<std::string>& login,
                                        std::vector<std::pair<std::string, SenderIdentity>>& out) {
  out.clear();
  return impl_->run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    if (login) {
      const auto acc =
          tx.exec_params("SELECT 1 FROM accounts WHERE lower(login) = lower($1)", *login);
      if (acc.empty()) return fail(StoreErrc::kNotFound, "no account " + *login);
    }
    const auto r = tx.exec_params(
        "SELECT login, id, kind, identity, on_behalf FROM sender_identities "
        "WHERE $1::text IS NULL OR lower(login) = lower($1) "
        "ORDER BY lower(login), kind, identity",
        login ? std::optional<std::string>(*login) : std::nullopt);
    for (const auto& row : r) {
      out.push_back({row[0].as<std::string>(),
                     stored_identity(row[1].as<std::int64_t>(), row[2].as<std::string>(),
                                     row[3].as<std::string>(), row[4].as<bool>())});
    }
    return StoreStatus{};
  });
}

namespace {

// Forwards NOTIFY payloads on one channel to a callback.
class ChangeReceiver final : public pqxx::notification_receiver {
 public:
  ChangeReceiver(pqxx::connection_base& c, const std::string& channel,
                 const std::function<void(const std::string&)>& on_change)
      : pqxx::notification_receiver(c, channel), on_change_(on_change) {}
  void operator()(const std::string& payload, int /*backend_pid*/) override { on_change_(payload); }

 private:
  const std::function<void(const std::string&)>& on_change_;
};

}  // namespace

StoreStatus IdentityStore::listen_for_changes(
    const std::string& channel, const std::atomic<bool>& stop,
    const std::function<void()>& on_ready,
    const std::function<void(const std::string&)>& on_change) {
  try {
    pqxx::connection c(impl_->conninfo);
    ChangeReceiver receiver(c, channel, on_change);
    on_ready();
    auto last_ping = std::chrono::steady_clock::now();
    while (!stop.load()) {
      c.await_notification(0, 200 * 1000);
      // A silent network failure would leave the socket looking idle forever: ping.
      const auto now = std::chrono::steady_clock::now();
      if (now - last_ping > std::chrono::seconds(5)) {
        pqxx::nontransaction tx(c);
        tx.exec("SELECT 1");
        last_ping = now;
      }
    }
    return StoreStatus{};
  } catch (const std::exception& e) {
    return fail(StoreErrc::kUnavailable, "change listener: " + one_line(e.what()));
  }
}

}  // namespace truefrom::auth
