// `truefrom srs rule add|remove|list` (the rules in the database) and `truefrom srs
// encode|decode` (the SRS form of an address with the configured domain and secrets).
#include <chrono>
#include <ctime>
#include <iostream>

#include "auth/identity_syntax.hpp"
#include "signer/srs/srs.hpp"
#include "signer/srs/srs_rules.hpp"
#include "submission/app/cli.hpp"
#include "submission/policy/sender_policy.hpp"

namespace truefrom::app {

std::optional<signer::srs::Srs> load_srs(const Config& config, std::string& error) {
  if (!config.srs_enabled) {
    error = "SRS is not configured: add an [srs] section with domain and secrets_file to " +
            config.file.string() + " (see contrib/truefrom.toml.sample)";
    return std::nullopt;
  }
  auto secrets = signer::srs::load_secrets(config.srs_secrets_file, error);
  if (!secrets) return std::nullopt;
  auto options = config.srs;
  options.secrets = std::move(*secrets);
  return signer::srs::Srs(std::move(options));
}

namespace {

int encode_or_decode(const std::string& verb, const std::string& address, const Config& config) {
  std::string error;
  const auto srs = load_srs(config, error);
  if (!srs) return fail(error);
  if (verb == "encode") {
    const auto out = srs->forward(address, std::time(nullptr), error);
    if (!out) return fail(error);
    std::cout << *out << "\n";
    return 0;
  }
  std::string why;
  const auto out = srs->reverse(address, std::time(nullptr), why);
  if (!out) return fail("<" + address + "> cannot be decoded: " + why);
  std::cout << *out << "\n";
  return 0;
}

int rules(const Args& a, const Config& config) {
  const auto& p = a.positional;
  const std::string verb = p.size() >= 3 ? p[2] : std::string{};
  const std::size_t want = verb == "add" ? 5 : verb == "remove" ? 4 : 3;
  if ((verb != "add" && verb != "remove" && verb != "list") || p.size() != want) {
    return usage_error(verb == "add" ? "expected: truefrom srs rule add DOMAIN rewrite|refuse|pass"
                       : verb == "remove" ? "expected: truefrom srs rule remove DOMAIN"
                       : verb == "list"   ? "expected: truefrom srs rule list"
                                          : "expected: truefrom srs rule add|remove|list",
                       "srs");
  }
  if (verb == "list" && a.account) return usage_error("list takes no --account", "srs");
  Database db(config);
  std::string error;
  if (!db.open(error)) return fail(error);
  if (verb == "list") {
    std::vector<auth::SrsRuleRow> rows;
    const auto st = db.store().list_srs_rules(rows);
    if (!st) return fail(describe(st));
    if (rows.empty()) std::cout << "no SRS rules: every forwarded sender is rewritten\n";
    for (const auto& r : rows) {
      std::cout << r.domain << "\t" << r.action << "\t"
                << (r.login.empty() ? std::string("(global)") : r.login) << "\t#" << r.id << "\n";
    }
    return 0;
  }
  std::string domain_text = p[3];
  if (!domain_text.empty() && domain_text.front() == '@') domain_text.erase(0, 1);
  const auto domain = auth::normalize_domain(domain_text);
  if (!domain || domain->find('@') != std::string::npos) {
    return fail("\"" + p[3] +
                "\" is not a domain name (a rule names a sender domain, e.g. "
                "example.com; it covers its subdomains too)");
  }
  const std::string login = a.account.value_or("");
  if (verb == "remove") {
    const auto st = db.store().remove_srs_rule(*domain, login);
    if (!st) return fail(describe(st));
    std::cout << "SRS rule for " << *domain
              << (login.empty() ? std::string(" (global)") : " (account " + login + ")")
              << " removed\n";
    return 0;
  }
  signer::srs::SrsAction action{};
  if (!signer::srs::parse_action(p[4], action)) {
    return usage_error("unknown action \"" + p[4] + "\" (rewrite, refuse or pass)", "srs");
  }
  auth::SrsRuleRow row;
  row.domain = *domain;
  row.action = p[4];
  row.login = login;
  std::string replaced;
  const auto st = db.store().set_srs_rule(row, &replaced);
  if (!st) return fail(describe(st));
  std::cout << "SRS rule #" << row.id << ": forwarded senders at " << row.domain
            << " (and subdomains) " << (row.login.empty() ? "" : "from account " + row.login + " ")
            << "are now "
            << (row.action == "pass"     ? "passed unchanged"
                : row.action == "refuse" ? "refused"
                                         : "rewritten")
            << (replaced.empty() ? "" : " (was " + replaced + ")") << "\n";
  if (!config.srs_enabled) {
    std::cout << "note: [srs] is not configured in " << config.file.string()
              << ", so forwarded senders pass unchanged until it is\n";
  }
  return 0;
}

}  // namespace

int cmd_srs(const Args& a, const Config& config) {
  const auto& p = a.positional;
  const std::string verb = p.size() >= 2 ? p[1] : std::string{};
  if (verb == "rule") return rules(a, config);
  if (verb == "encode" || verb == "decode") {
    if (p.size() != 3) return usage_error("expected: truefrom srs " + verb + " ADDRESS", "srs");
    if (a.account) return usage_error(verb + " takes no --account", "srs");
    return encode_or_decode(verb, p[2], config);
  }
  return usage_error(
      verb.empty() ? "expected an srs command" : "unknown srs command \"" + verb + "\"", "srs");
}

}  // namespace truefrom::app
