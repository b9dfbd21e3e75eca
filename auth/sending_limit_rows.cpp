// The sending-limit rows and the per-slot counts of IdentityStore (schema 0005).
#include "auth/store_impl.hpp"

namespace truefrom::auth {

namespace {

constexpr const char* kColumns[4] = {"messages_per_hour", "messages_per_day",
                                     "recipients_per_message", "recipients_per_day"};

// A PostgreSQL array literal of text: every element quoted, '"' and '\' escaped.
std::string text_array(const std::vector<std::string>& items) {
  std::string out = "{";
  for (const auto& s : items) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char ch : s) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  return out + "}";
}

std::string number_array(const std::vector<std::int64_t>& items) {
  std::string out = "{";
  for (auto n : items) {
    if (out.size() > 1) out += ',';
    out += std::to_string(n);
  }
  return out + "}";
}

std::optional<std::int64_t> optional_int(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<std::int64_t>();
}

}  // namespace

StoreStatus IdentityStore::list_limit_rules(std::vector<LimitRuleRow>& out) {
  out.clear();
  return impl_->run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    for (const auto& r : tx.exec(
             "SELECT id, scope, coalesce(domain, ''), coalesce(login, ''), messages_per_hour, "
             "messages_per_day, recipients_per_message, recipients_per_day, "
             "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM sending_limits "
             "ORDER BY array_position(ARRAY['default', 'domain', 'account'], scope), domain, "
             "login, id")) {
      LimitRuleRow row;
      row.id = r[0].as<std::int64_t>();
      row.scope = r[1].as<std::string>();
      row.domain = r[2].as<std::string>();
      row.login = r[3].as<std::string>();
      for (int i = 0; i < 4; ++i) row.values[static_cast<std::size_t>(i)] = optional_int(r[4 + i]);
      row.updated_at = r[8].as<std::string>();
      out.push_back(std::move(row));
    }
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::canonical_login(const std::string& login, std::string& out) {
  return impl_->run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    const auto a = tx.exec_params("SELECT login FROM accounts WHERE lower(login) = lower($1)", login);
    if (a.empty()) {
      return fail(StoreErrc::kNotFound,
                  "no account " + login + " (list them with: truefrom account list)");
    }
    out = a[0][0].as<std::string>();
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::set_limit_rule(LimitRuleRow& row, const std::array<bool, 4>& clear) {
  return impl_->run([&](pqxx::connection& c) {
    pqxx::work tx(c);
    if (row.scope == "account") {
      const auto a =
          tx.exec_params("SELECT login FROM accounts WHERE lower(login) = lower($1)", row.login);
      if (a.empty()) {
        return fail(StoreErrc::kNotFound,
                    "no account " + row.login + " (list them with: truefrom account list)");
      }
      row.login = a[0][0].as<std::string>();
    }
    const auto old = tx.exec_params(
        "SELECT id FROM sending_limits WHERE scope = $1 AND coalesce(domain, '') = $2 "
        "AND lower(coalesce(login, '')) = lower($3) FOR UPDATE",
        row.scope, row.domain, row.login);
    if (old.empty()) {
      const auto r = tx.exec_params(
          "INSERT INTO sending_limits (scope, domain, login) VALUES ($1, nullif($2, ''), "
          "nullif($3, '')) RETURNING id",
          row.scope, row.domain, row.login);
      row.id = r[0][0].as<std::int64_t>();
    } else {
      row.id = old[0][0].as<std::int64_t>();
    }
    for (std::size_t i = 0; i < 4; ++i) {
      if (!row.values[i] && !clear[i]) continue;
      const std::string set = std::string("UPDATE sending_limits SET ") + kColumns[i];
      if (row.values[i]) {
        tx.exec_params(set + " = $2, updated_at = now() WHERE id = $1", row.id, *row.values[i]);
      } else {
        tx.exec_params(set + " = NULL, updated_at = now() WHERE id = $1", row.id);
      }
    }
    // Read the row back whole: values not given keep what they had.
    const auto r = tx.exec_params(
        "SELECT messages_per_hour, messages_per_day, recipients_per_message, "
        "recipients_per_day FROM sending_limits WHERE id = $1",
        row.id);
    bool any = false;
    for (int i = 0; i < 4; ++i) {
      row.values[static_cast<std::size_t>(i)] = optional_int(r[0][i]);
      any = any || !r[0][i].is_null();
    }
    if (!any) tx.exec_params("DELETE FROM sending_limits WHERE id = $1", row.id);
    tx.commit();
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::add_counts(const std::vector<SlotCount>& increments) {
  if (increments.empty()) return StoreStatus{};
  std::vector<std::string> logins;
  std::vector<std::int64_t> slots, messages, recipients;
  for (const auto& i : increments) {
    logins.push_back(i.login);
    slots.push_back(i.slot);
    messages.push_back(i.messages);
    recipients.push_back(i.recipients);
  }
  return impl_->run([&](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec_params(
        "INSERT INTO sending_counts AS s (login, slot, messages, recipients) "
        "SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) "
        "ON CONFLICT (login, slot) DO UPDATE SET messages = s.messages + EXCLUDED.messages, "
        "recipients = s.recipients + EXCLUDED.recipients",
        text_array(logins), number_array(slots), number_array(messages), number_array(recipients));
    tx.commit();
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::read_counts(const std::vector<std::string>& logins, std::int64_t since,
                                       std::vector<SlotCount>& out) {
  out.clear();
  if (logins.empty()) return StoreStatus{};
  return impl_->run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    for (const auto& r : tx.exec_params(
             "SELECT login, slot, messages, recipients FROM sending_counts "
             "WHERE login = ANY($1::text[]) AND slot >= $2 ORDER BY login, slot",
             text_array(logins), since)) {
      out.push_back({r[0].as<std::string>(), r[1].as<std::int64_t>(), r[2].as<std::int64_t>(),
                     r[3].as<std::int64_t>()});
    }
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::reset_counts(const std::string& login) {
  return impl_->run([&](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec_params("DELETE FROM sending_counts WHERE login = $1", login);
    tx.commit();
    return StoreStatus{};
  });
}

StoreStatus IdentityStore::expire_counts(std::int64_t before) {
  return impl_->run([&](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec_params("DELETE FROM sending_counts WHERE slot < $1", before);
    tx.commit();
    return StoreStatus{};
  });
}

}  // namespace truefrom::auth
