// The DKIM key rows of IdentityStore (schema 0003): listing, adding and the state changes
// of key rotation.
#include "auth/store_impl.hpp"

namespace truefrom::auth {
namespace {

constexpr const char* kColumns =
    "id, domain, selector, algorithm, key_path, public_key, state, "
    "coalesce(to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), ''), "
    "coalesce(to_char(activated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), ''), "
    "coalesce(to_char(retired_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), '')";

DkimKeyRow row_of(const pqxx::row& r) {
  DkimKeyRow k;
  k.id = r[0].as<std::int64_t>();
  k.domain = r[1].as<std::string>();
  k.selector = r[2].as<std::string>();
  k.algorithm = r[3].as<std::string>();
  k.key_path = r[4].as<std::string>();
  k.public_key = r[5].as<std::string>();
  k.state = r[6].as<std::string>();
  k.created_at = r[7].as<std::string>();
  k.activated_at = r[8].as<std::string>();
  k.retired_at = r[9].as<std::string>();
  return k;
}

std::string key_name(const std::string& domain, const std::string& selector) {
  return selector + "._domainkey." + domain;
}

}  // namespace

StoreStatus IdentityStore::list_dkim_keys(const std::string& domain, bool active_only,
                                          std::vector<DkimKeyRow>& out) {
  out.clear();
  return impl_->run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    const pqxx::result r = tx.exec_params(
        std::string("SELECT ") + kColumns +
            " FROM dkim_keys WHERE ($1 = '' OR domain = $1) AND (NOT $2 OR state = 'active')"
            " ORDER BY domain, id",
        domain, active_only);
    for (const auto& row : r) out.push_back(row_of(row));
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::add_dkim_key(DkimKeyRow& row) {
  return impl_->run([&](pqxx::connection& c) {
    pqxx::work tx(c);
    if (!tx.exec_params("SELECT 1 FROM dkim_keys WHERE domain = $1 AND selector = $2", row.domain,
                        row.selector)
             .empty()) {
      return fail(StoreErrc::kExists, "there is already a key " +
                                          key_name(row.domain, row.selector) +
                                          " (choose another --selector)");
    }
    const auto r = tx.exec_params(
        "INSERT INTO dkim_keys (domain, selector, algorithm, key_path, public_key) "
        "VALUES ($1, $2, $3, $4, $5) RETURNING id",
        row.domain, row.selector, row.algorithm, row.key_path, row.public_key);
    tx.commit();
    row.id = r[0][0].as<std::int64_t>();
    row.state = "pending";
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::activate_dkim_key(const std::string& domain, const std::string& selector,
                                             std::string* retired) {
  if (retired) retired->clear();
  return impl_->run([&](pqxx::connection& c) {
    pqxx::work tx(c);
    const auto r = tx.exec_params(
        "SELECT algorithm, state FROM dkim_keys WHERE domain = $1 AND selector = $2 FOR UPDATE",
        domain, selector);
    if (r.empty()) {
      return fail(StoreErrc::kNotFound, "no key " + key_name(domain, selector) +
                                            " (see `truefrom dkim list " + domain + "`)");
    }
    const std::string algorithm = r[0][0].as<std::string>();
    const std::string state = r[0][1].as<std::string>();
    if (state == "active") return StoreStatus{};
    if (state == "retired") {
      return fail(StoreErrc::kInvalid, "key " + key_name(domain, selector) +
                                           " is retired; a retired key is never used again "
                                           "(generate a new one with `truefrom dkim keygen`)");
    }
    const auto old = tx.exec_params(
        "UPDATE dkim_keys SET state = 'retired', retired_at = now() "
        "WHERE domain = $1 AND algorithm = $2 AND state = 'active' RETURNING selector",
        domain, algorithm);
    tx.exec_params(
        "UPDATE dkim_keys SET state = 'active', activated_at = now() "
        "WHERE domain = $1 AND selector = $2",
        domain, selector);
    tx.commit();
    if (retired && !old.empty()) *retired = old[0][0].as<std::string>();
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::retire_dkim_key(const std::string& domain, const std::string& selector) {
  return impl_->run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    const auto r = tx.exec_params(
        "UPDATE dkim_keys SET state = 'retired', retired_at = coalesce(retired_at, now()) "
        "WHERE domain = $1 AND selector = $2",
        domain, selector);
    if (r.affected_rows() == 0) {
      return fail(StoreErrc::kNotFound, "no key " + key_name(domain, selector) +
                                            " (see `truefrom dkim list " + domain + "`)");
    }
    return StoreStatus{};
  });
}

}  // namespace truefrom::auth
