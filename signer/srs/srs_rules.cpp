#include "signer/srs/srs_rules.hpp"

#include "signer/ascii.hpp"

namespace truefrom::signer::srs {
namespace {

// `domain` is `rule` or one of its subdomains.
bool covers(std::string_view rule, std::string_view domain) {
  if (domain == rule) return true;
  return domain.size() > rule.size() && domain[domain.size() - rule.size() - 1] == '.' &&
         domain.substr(domain.size() - rule.size()) == rule;
}

}  // namespace

std::string_view action_name(SrsAction a) {
  switch (a) {
    case SrsAction::kRefuse:
      return "refuse";
    case SrsAction::kPass:
      return "pass";
    case SrsAction::kRewrite:
      break;
  }
  return "rewrite";
}

bool parse_action(std::string_view text, SrsAction& out) {
  for (SrsAction a : {SrsAction::kRewrite, SrsAction::kRefuse, SrsAction::kPass}) {
    if (text == action_name(a)) {
      out = a;
      return true;
    }
  }
  return false;
}

SrsRules::SrsRules(std::vector<SrsRule> rules) : rules_(std::move(rules)) {}

SrsVerdict SrsRules::decide(std::string_view domain, std::string_view login) const {
  const SrsRule* best = nullptr;
  for (const auto& r : rules_) {
    if (!r.login.empty() && !ascii_iequal(r.login, login)) continue;
    if (!covers(r.domain, domain)) continue;
    if (!best || r.domain.size() > best->domain.size() ||
        (r.domain.size() == best->domain.size() && !r.login.empty() && best->login.empty())) {
      best = &r;
    }
  }
  if (!best)
    return {SrsAction::kRewrite, "no SRS rule for " + std::string(domain) + " (default: rewrite)"};
  return {best->action, "SRS rule #" + std::to_string(best->id) + " (" + best->domain +
                            (best->login.empty() ? ", global" : ", account " + best->login) + ": " +
                            std::string(action_name(best->action)) + ")"};
}

}  // namespace truefrom::signer::srs
