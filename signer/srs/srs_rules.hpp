// Which forwarded envelope senders are rewritten with SRS, refused, or passed unchanged.
// A rule names a domain (matching it and its subdomains), an action and optionally one
// account. The most specific rule wins: the longest matching domain, then the account's own
// rule over a global one. No rule: rewrite.
// Thread-safety: immutable once built; share it between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace truefrom::signer::srs {

enum class SrsAction { kRewrite, kRefuse, kPass };

std::string_view action_name(SrsAction a);
/// "rewrite", "refuse" or "pass"; false otherwise.
bool parse_action(std::string_view text, SrsAction& out);

struct SrsRule {
  std::int64_t id = 0;
  std::string domain;  ///< lower-case A-labels
  SrsAction action = SrsAction::kRewrite;
  std::string login;  ///< empty: global
};

struct SrsVerdict {
  SrsAction action = SrsAction::kRewrite;
  /// The deciding rule, in words for logs and `truefrom check`, e.g.
  /// "SRS rule #3 (example.com, account alice: pass)" or "no SRS rule (default: rewrite)".
  std::string reason;
};

class SrsRules {
 public:
  SrsRules() = default;
  explicit SrsRules(std::vector<SrsRule> rules);
  /// The verdict for a sender at `domain` (lower-case A-labels) submitted by `login`.
  SrsVerdict decide(std::string_view domain, std::string_view login) const;
  std::size_t size() const { return rules_.size(); }

 private:
  std::vector<SrsRule> rules_;
};

/// The rules in force, replaced as a whole when the database changes.
/// Thread-safety: current() and replace() from any thread.
class SrsRuleHolder {
 public:
  SrsRuleHolder() : rules_(std::make_shared<const SrsRules>()) {}
  std::shared_ptr<const SrsRules> current() const {
    std::lock_guard lock(mutex_);
    return rules_;
  }
  void replace(std::vector<SrsRule> rules) {
    auto next = std::make_shared<const SrsRules>(std::move(rules));
    std::lock_guard lock(mutex_);
    rules_ = std::move(next);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const SrsRules> rules_;
};

}  // namespace truefrom::signer::srs
