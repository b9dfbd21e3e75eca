// Runs the sender-binding corpus tests/golden/header_binding.txt (format in
// tests/golden/README.md) through SenderPolicy::check_message. TRUEFROM_REGENERATE=1
// rewrites the verdicts with what the policy says now; review the diff before committing.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

#include "submission/policy/sender_policy.hpp"

#include "auth/identity_syntax.hpp"

namespace truefrom::policy {
namespace {

using namespace truefrom::auth;  // identities, domain syntax

const char* const kCorpus = TRUEFROM_SOURCE_DIR "/tests/golden/header_binding.txt";

struct Case {
  std::string name;
  std::vector<std::string> directives;
  std::vector<std::string> lines;
  std::string want;
  std::size_t want_line = 0;  // index in the file's lines
};

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

std::vector<Case> parse_corpus(const std::vector<std::string>& lines) {
  std::vector<Case> out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    if (l.rfind("### ", 0) == 0) {
      out.push_back(Case{l.substr(4), {}, {}, {}, 0});
    } else if (out.empty() || l.empty() || l[0] == '#') {
      continue;
    } else if (l.rfind("% ", 0) == 0) {
      out.back().directives.push_back(l.substr(2));
    } else if (l.rfind("=> ", 0) == 0) {
      out.back().want = l.substr(3);
      out.back().want_line = i;
    } else {
      out.back().lines.push_back(l);
    }
  }
  return out;
}

AccountIdentities fixture() {
  using K = SenderIdentity::Kind;
  AccountIdentities a;
  a.account.login = "alice";
  a.identities = {
      {K::kAddress, "alice@example.com", false, 1},    {K::kDomain, "example.org", false, 2},
      {K::kAddress, "sales@example.com", true, 3},     {K::kAddress, "team@example.com", false, 4},
      {K::kDomain, "xn--bcher-kva.example", false, 5}, {K::kDomain, "partner.example", true, 6},
      {K::kAddress, "josé@example.com", false, 7},     {K::kDomain, "mail.example.com", false, 8}};
  return a;
}

std::string verdict(const Case& c) {
  PolicyOptions options;
  std::optional<smtp::Mailbox> mail_from = smtp::Mailbox{"alice", "example.com"};
  bool smtputf8 = false;
  for (const auto& d : c.directives) {
    if (d == "smtputf8") {
      smtputf8 = true;
    } else if (d.rfind("mail-from: ", 0) == 0) {
      const std::string addr = d.substr(11);
      auto path = smtp::parse_path(addr, nullptr, true);
      if (!path) return "bad mail-from directive " + addr;
      mail_from = path->mailbox;
    } else if (d == "option require_alignment") {
      options.require_alignment = true;
    } else if (d == "option no_display_name_check") {
      options.refuse_address_in_display_name = false;
    } else if (d == "option case_sensitive") {
      options.local_part_case_sensitive = true;
    } else if (d == "option no_subaddress") {
      options.subaddress_separators.clear();
    } else if (d.rfind("differential: ", 0) != 0) {
      return "unknown directive " + d;
    }
  }
  std::string message;
  for (const auto& l : c.lines) message += l + "\r\n";
  message += "\r\nbody\r\n";
  const SenderPolicy policy(options);
  const auto account = fixture();
  Decision d = policy.check_envelope(account, mail_from);
  if (!d.refusal) d = policy.check_message(account, mail_from, message, smtputf8);
  if (d.refusal) {
    std::string wire = d.refusal->serialize();  // one line: "550 5.7.1 text\r\n"
    return wire.substr(0, wire.size() - 2);
  }
  return d.add_sender.empty() ? "accept" : "accept; Sender: " + d.add_sender + " added";
}

TEST(HeaderBinding, Corpus) {
  auto lines = read_lines(kCorpus);
  ASSERT_FALSE(lines.empty()) << "cannot read " << kCorpus;
  const auto cases = parse_corpus(lines);
  EXPECT_GE(cases.size(), 150u);
  const bool regenerate = std::getenv("TRUEFROM_REGENERATE") != nullptr;
  for (const auto& c : cases) {
    ASSERT_NE(c.want_line, 0u) << "case \"" << c.name << "\" has no => verdict line";
    const std::string got = verdict(c);
    if (regenerate) {
      lines[c.want_line] = "=> " + got;
    } else {
      EXPECT_EQ(got, c.want) << "case \"" << c.name << "\"";
    }
  }
  if (regenerate) {
    std::ofstream out(kCorpus, std::ios::binary | std::ios::trunc);
    for (const auto& l : lines) out << l << "\n";
  }
}

TEST(HeaderBinding, CorpusCoversEveryVerdictKind) {
  const auto cases = parse_corpus(read_lines(kCorpus));
  int accepted = 0, refused_owner = 0, refused_syntax = 0, sender_added = 0;
  for (const auto& c : cases) {
    if (c.want == "accept") ++accepted;
    if (c.want.rfind("accept; Sender:", 0) == 0) ++sender_added;
    if (c.want.rfind("550 5.7.1", 0) == 0) ++refused_owner;
    if (c.want.rfind("550 5.6.0", 0) == 0) ++refused_syntax;
  }
  EXPECT_GE(accepted, 40);
  EXPECT_GE(refused_owner, 30);
  EXPECT_GE(refused_syntax, 30);
  EXPECT_GE(sender_added, 3);
}

}  // namespace
}  // namespace truefrom::policy
