// The SRS rule rows of IdentityStore (schema 0004).
#include "auth/store_impl.hpp"

namespace truefrom::auth {

StoreStatus IdentityStore::list_srs_rules(std::vector<SrsRuleRow>& out) {
  out.clear();
  return impl_->run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    for (const auto& r : tx.exec("SELECT id, domain, action, coalesce(login, ''), "
                                 "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') "
                                 "FROM srs_rules ORDER BY domain, login NULLS FIRST, id")) {
      out.push_back({r[0].as<std::int64_t>(), r[1].as<std::string>(), r[2].as<std::string>(),
                     r[3].as<std::string>(), r[4].as<std::string>()});
    }
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::set_srs_rule(SrsRuleRow& row, std::string* replaced) {
  if (replaced) replaced->clear();
  return impl_->run([&](pqxx::connection& c) {
    pqxx::work tx(c);
    if (!row.login.empty()) {
      const auto a =
          tx.exec_params("SELECT login FROM accounts WHERE lower(login) = lower($1)", row.login);
      if (a.empty()) {
        return fail(StoreErrc::kNotFound,
                    "no account " + row.login + " (list them with: truefrom account list)");
      }
      row.login = a[0][0].as<std::string>();
    }
    const auto old = tx.exec_params(
        "SELECT id, action FROM srs_rules WHERE domain = $1 AND coalesce(login, '') = $2 "
        "FOR UPDATE",
        row.domain, row.login);
    if (!old.empty()) {
      if (replaced) *replaced = old[0][1].as<std::string>();
      row.id = old[0][0].as<std::int64_t>();
      tx.exec_params("UPDATE srs_rules SET action = $2 WHERE id = $1", row.id, row.action);
    } else {
      const auto r = tx.exec_params(
          "INSERT INTO srs_rules (domain, action, login) VALUES ($1, $2, nullif($3, '')) "
          "RETURNING id",
          row.domain, row.action, row.login);
      row.id = r[0][0].as<std::int64_t>();
    }
    tx.commit();
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::remove_srs_rule(const std::string& domain, const std::string& login) {
  return impl_->run([&](pqxx::connection& c) {
    pqxx::work tx(c);
    const auto r = tx.exec_params(
        "DELETE FROM srs_rules WHERE domain = $1 AND lower(coalesce(login, '')) = lower($2)",
        domain, login);
    if (r.affected_rows() == 0) {
      return fail(StoreErrc::kNotFound,
                  "no SRS rule for " + domain +
                      (login.empty() ? std::string(" (global)") : " for account " + login) +
                      " (list them with: truefrom srs rule list)");
    }
    tx.commit();
    return StoreStatus{};
  });
}

}  // namespace truefrom::auth
