// `truefrom limits set|show|reset|list`: the per-account sending limits in the database
// (schema 0005) and the counts the servers keep there.
#include <ctime>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "auth/identity_syntax.hpp"
#include "submission/app/cli.hpp"
#include "submission/app/sending_limits.hpp"
#include "submission/policy/sending_limits.hpp"

namespace truefrom::app {

namespace {

using policy::SendingCounter;

std::string scope_text(const auth::LimitRuleRow& r) {
  if (r.scope == "default") return "default";
  return r.scope == "domain" ? "domain " + r.domain : "account " + r.login;
}

// TARGET as the admin wrote it: "default", an account (a login with '@', or one that
// exists) or a domain.
bool parse_target(auth::IdentityStore& store, const std::string& text, auth::LimitRuleRow& row,
                  std::string& error) {
  if (text == "default") {
    row.scope = "default";
    return true;
  }
  std::string login;
  const auto st = store.canonical_login(text, login);
  if (st) {
    row.scope = "account";
    row.login = login;
    return true;
  }
  if (st.code != auth::StoreErrc::kNotFound) {
    error = describe(st);
    return false;
  }
  if (text.find('@') != std::string::npos) {
    error = "no account " + text + " (list them with: truefrom account list)";
    return false;
  }
  const auto domain = auth::normalize_domain(text);
  if (!domain || domain->find('.') == std::string::npos) {
    error = "\"" + text +
            "\" is neither an account nor a domain name (write a login, a domain such as "
            "example.com, or default)";
    return false;
  }
  row.scope = "domain";
  row.domain = *domain;
  return true;
}

int set(const Args& a, const Config& config) {
  const auto& p = a.positional;
  if (p.size() < 4) {
    return usage_error("expected: truefrom limits set LOGIN|DOMAIN|default KEY=VALUE...",
                       "limits");
  }
  auth::LimitRuleRow row;
  std::array<bool, 4> clear{};
  for (std::size_t i = 3; i < p.size(); ++i) {
    const auto eq = p[i].find('=');
    const auto key = policy::parse_limit_key(p[i].substr(0, eq));
    if (eq == std::string::npos || !key) {
      std::string keys;
      for (auto k : policy::kLimitNames) keys += (keys.empty() ? "" : ", ") + std::string(k);
      return usage_error("\"" + p[i] + "\" is not KEY=VALUE with KEY one of " + keys, "limits");
    }
    const std::size_t k = static_cast<std::size_t>(*key);
    const std::string value = p[i].substr(eq + 1);
    if (value == "inherit") {
      clear[k] = true;
      row.values[k].reset();
      continue;
    }
    std::int64_t n = -1;
    std::istringstream in(value);
    if (!(in >> n) || !in.eof() || n < 0 || n > 100000000) {
      return usage_error("\"" + value + "\" for " + std::string(policy::kLimitNames[k]) +
                             " is not a count: write a number (0 = no limit) or inherit",
                         "limits");
    }
    row.values[k] = n;
    clear[k] = false;
  }
  Database db(config);
  std::string error;
  if (!db.open(error)) return fail(error);
  if (!parse_target(db.store(), p[2], row, error)) return fail(error);
  if (const auto st = db.store().set_limit_rule(row, clear); !st) return fail(describe(st));
  std::cout << "limits for " << scope_text(row) << ":";
  bool any = false;
  for (std::size_t i = 0; i < policy::kLimitKeys; ++i) {
    if (!row.values[i]) continue;
    std::cout << " " << policy::kLimitNames[i] << "=" << *row.values[i];
    any = true;
  }
  std::cout << (any ? "" : " none set (inherited from the next level)")
            << "\nrunning servers apply it within a second\n";
  return 0;
}

int list(const Config& config) {
  Database db(config);
  std::string error;
  if (!db.open(error)) return fail(error);
  std::vector<auth::LimitRuleRow> rows;
  if (const auto st = db.store().list_limit_rules(rows); !st) return fail(describe(st));
  std::cout << "config [limits]:";
  for (std::size_t i = 0; i < policy::kLimitKeys; ++i) {
    std::cout << " " << policy::kLimitNames[i] << "=" << config.limits[i];
  }
  std::cout << (config.limits_enabled ? "" : " (limits.enabled = false: not enforced)") << "\n";
  for (const auto& r : rows) {
    std::cout << scope_text(r) << ":";
    for (std::size_t i = 0; i < policy::kLimitKeys; ++i) {
      if (r.values[i]) std::cout << " " << policy::kLimitNames[i] << "=" << *r.values[i];
    }
    std::cout << "\t(" << r.updated_at << " UTC)\n";
  }
  return 0;
}

void print_limits(const LimitReport& r) {
  const std::string counted[4] = {std::to_string(r.hour.messages) + " sent in the last hour",
                                  std::to_string(r.day.messages) + " sent in the last day", "",
                                  std::to_string(r.day.recipients) + " in the last day"};
  for (std::size_t i = 0; i < policy::kLimitKeys; ++i) {
    std::cout << "  " << std::left << std::setw(24) << policy::kLimitNames[i] << std::setw(8)
              << (r.limits.value[i] ? std::to_string(r.limits.value[i]) : std::string("none"))
              << std::setw(34) << ("from " + r.limits.source[i]) << counted[i] << "\n";
  }
}

int show(const Args& a, const Config& config) {
  Database db(config);
  std::string error;
  if (!db.open(error)) return fail(error);
  std::string login;
  if (const auto st = db.store().canonical_login(a.positional[2], login); !st) {
    return fail(describe(st));
  }
  LimitReport report;
  if (const auto st = load_limit_report(db.store(), config, login, report); !st) {
    return fail(describe(st));
  }
  std::cout << "limits of " << login
            << (config.limits_enabled ? "" : " (limits.enabled = false: not enforced)") << "\n";
  print_limits(report);
  std::cout << "(counts as the servers last wrote them, every [limits] sync_interval_ms; "
               "a window counts 5-minute slots)\n";
  return 0;
}

int reset(const Args& a, const Config& config) {
  Database db(config);
  std::string error;
  if (!db.open(error)) return fail(error);
  std::string login;
  if (const auto st = db.store().canonical_login(a.positional[2], login); !st) {
    return fail(describe(st));
  }
  if (const auto st = db.store().reset_counts(login); !st) return fail(describe(st));
  std::cout << "counts of " << login
            << " reset; running servers read them within a second (a minute for an account "
               "idle for an hour)\n";
  return 0;
}

}  // namespace

auth::StoreStatus load_limit_report(auth::IdentityStore& store, const Config& config,
                                    const std::string& login, LimitReport& out) {
  std::vector<auth::LimitRuleRow> rows;
  if (auto st = store.list_limit_rules(rows); !st) return st;
  const policy::LimitRules rules(config.limits, to_limit_rules(rows));
  out.limits = rules.for_account(login);
  const auto now = static_cast<SendingCounter::Time>(std::time(nullptr));
  std::vector<auth::SlotCount> counts;
  if (auto st = store.read_counts({login}, SendingCounter::slot_of(now - SendingCounter::kDay),
                                  counts);
      !st) {
    return st;
  }
  SendingCounter counter;
  std::vector<std::pair<SendingCounter::Time, SendingCounter::Counts>> slots;
  for (const auto& c : counts) slots.push_back({c.slot, {c.messages, c.recipients}});
  counter.apply_totals(login, slots, now);
  out.hour = counter.in_window(login, SendingCounter::kHour, now);
  out.day = counter.in_window(login, SendingCounter::kDay, now);
  SendingCounter::Time slot = 0;
  out.hit = counter.begin_message(login, out.limits, now, &slot);
  if (out.hit) out.reply = policy::limit_reply(*out.hit, login, now);
  return {};
}

void print_limit_report(const LimitReport& report) { print_limits(report); }

int cmd_limits(const Args& a, const Config& config) {
  const auto& p = a.positional;
  const std::string verb = p.size() >= 2 ? p[1] : std::string{};
  if (verb == "set") return set(a, config);
  if (verb == "list" && p.size() == 2) return list(config);
  if ((verb == "show" || verb == "reset") && p.size() == 3) {
    return verb == "show" ? show(a, config) : reset(a, config);
  }
  return usage_error(verb == "show" || verb == "reset"
                         ? "expected: truefrom limits " + verb + " LOGIN"
                         : "expected: truefrom limits set|show|reset|list",
                     "limits");
}

}  // namespace truefrom::app
