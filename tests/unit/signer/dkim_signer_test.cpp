#include "signer/dkim/dkim_signer.hpp"

#include <gtest/gtest.h>

#include "tests/unit/signer/dkim_test_support.hpp"

namespace truefrom::signer {
namespace {

using test::signed_message;
using test::verify;

const std::string kMessage =
    "From: Alice <alice@example.test>\r\n"
    "To: bob@example.net,\r\n"
    "  carol@example.net\r\n"
    "Subject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?=\r\n"
    "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
    "Message-ID: <1@example.test>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "X-Mailer:   spaced    out  \r\n"
    "\r\n"
    "Gr\xc3\xbc\xc3\x9f"
    "e  with   spaces \t \r\n"
    "\r\n"
    "and a line with trailing blanks   \r\n"
    "\r\n"
    "\r\n";

struct Fixture : ::testing::Test {
  test::TempDir dir;
  SigningKey rsa = test::make_key(dir.path(), "example.test", "r1", Algorithm::kRsaSha256);
  SigningKey ed = test::make_key(dir.path(), "example.test", "e1", Algorithm::kEd25519Sha256);
};

struct CanonCase {
  const char* canon;
  Algorithm algorithm;
};

class SignAndVerify : public Fixture, public ::testing::WithParamInterface<CanonCase> {};

TEST_P(SignAndVerify, LibopendkimVerifiesAndDetectsChanges) {
  SignerOptions o;
  ASSERT_TRUE(parse_canonicalization(GetParam().canon, o));
  const DkimSigner signer(o);
  const SigningKey& key = GetParam().algorithm == Algorithm::kRsaSha256 ? rsa : ed;
  ASSERT_TRUE(key.usable()) << key.error;
  std::string error;
  const std::string m = signed_message(signer, {&key}, kMessage, &error);
  ASSERT_EQ(error, "");
  ASSERT_EQ(
      m.rfind("DKIM-Signature: v=1; a=" + std::string(algorithm_name(key.record.algorithm)), 0), 0u)
      << m;
  EXPECT_NE(m.find("c=" + std::string(GetParam().canon)), std::string::npos) << m;
  EXPECT_EQ(m.find("; l="), std::string::npos) << "no body length limit";

  auto v = verify(m, {key.record}, dir.path());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_TRUE(v[0].pass) << v[0].detail;

  // The verifier really checks: a changed body, a changed header, an added From: or To:.
  std::string body_changed = m;
  body_changed.replace(body_changed.find("and a line"), 5, "AND A");
  EXPECT_FALSE(verify(body_changed, {key.record}, dir.path()).at(0).pass);
  std::string subject_changed = m;
  subject_changed.replace(subject_changed.find("Subject: ") + 9, 2, "=?");
  subject_changed.insert(subject_changed.find("Subject: ") + 9, "Re: ");
  EXPECT_FALSE(verify(subject_changed, {key.record}, dir.path()).at(0).pass);
  for (const char* added : {"From: mallory@evil.test\r\n", "To: extra@example.net\r\n",
                            "Reply-To: mallory@evil.test\r\n", "Cc: x@example.net\r\n"}) {
    std::string more = m;
    more.insert(more.find("\r\n\r\n") + 2, added);
    EXPECT_FALSE(verify(more, {key.record}, dir.path()).at(0).pass) << "added " << added;
  }
  // An unsigned field may be added (a Received: on the way) without breaking it.
  std::string trace = "Received: from relay by mx; Mon, 23 Nov 2026 10:00:01 +0000\r\n" + m;
  EXPECT_TRUE(verify(trace, {key.record}, dir.path()).at(0).pass);
}

INSTANTIATE_TEST_SUITE_P(All, SignAndVerify,
                         ::testing::Values(CanonCase{"relaxed/relaxed", Algorithm::kRsaSha256},
                                           CanonCase{"relaxed/relaxed", Algorithm::kEd25519Sha256},
                                           CanonCase{"simple/simple", Algorithm::kRsaSha256},
                                           CanonCase{"simple/simple", Algorithm::kEd25519Sha256},
                                           CanonCase{"relaxed/simple", Algorithm::kRsaSha256},
                                           CanonCase{"simple/relaxed", Algorithm::kEd25519Sha256}),
                         [](const auto& info) {
                           std::string n = info.param.canon;
                           for (char& c : n) {
                             if (c == '/') c = '_';
                           }
                           return n + (info.param.algorithm == Algorithm::kRsaSha256 ? "_rsa"
                                                                                     : "_ed25519");
                         });

TEST_F(Fixture, DualSignatureBothVerify) {
  const DkimSigner signer;
  std::string error;
  const std::string m = signed_message(signer, {&rsa, &ed}, kMessage, &error);
  ASSERT_EQ(error, "");
  const auto v = verify(m, {rsa.record, ed.record}, dir.path());
  ASSERT_EQ(v.size(), 2u);
  EXPECT_TRUE(v[0].pass) << v[0].detail;
  EXPECT_TRUE(v[1].pass) << v[1].detail;
  EXPECT_NE(m.find("a=rsa-sha256"), std::string::npos);
  EXPECT_NE(m.find("a=ed25519-sha256"), std::string::npos);
}

// libopendkim leaks the key of every Ed25519 signature; the signer reclaims it (the ASan
// run's leak check would report it otherwise). Many signatures, none left unreclaimed.
TEST_F(Fixture, Ed25519KeysLeakedByLibopendkimAreReclaimed) {
  const DkimSigner signer;
  for (int i = 0; i < 50; ++i) {
    const SignResult r = signer.sign({&ed}, test::split(kMessage));
    ASSERT_EQ(r.error, "");
  }
  EXPECT_EQ(signer.unreclaimed(), 0u);
}

// The h= tag of the first signature in `m`, unfolded.
std::string h_tag(const std::string& m) {
  std::string unfolded;
  for (char c : m.substr(0, m.find("\r\n\r\n"))) {
    if (c != '\r' && c != '\n' && c != '\t' && c != ' ') unfolded += c;
  }
  const auto at = unfolded.find(";h=");
  return unfolded.substr(at + 3, unfolded.find(';', at + 3) - at - 3);
}

TEST_F(Fixture, OversignsListedFieldsOnceMoreThanPresent) {
  const DkimSigner signer;
  const std::string m = signed_message(signer, {&rsa}, kMessage);
  const std::string h = h_tag(m);
  auto count = [&](const std::string& name) {
    std::size_t n = 0;
    std::size_t pos = 0;
    const std::string list = ":" + h + ":";
    std::string lower;
    for (char c : list) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    while ((pos = lower.find(":" + name + ":", pos)) != std::string::npos) {
      ++n;
      ++pos;
    }
    return n;
  };
  EXPECT_EQ(count("from"), 2u) << h;
  EXPECT_EQ(count("to"), 2u) << h;
  EXPECT_EQ(count("subject"), 2u) << h;
  EXPECT_EQ(count("date"), 2u) << h;
  EXPECT_EQ(count("message-id"), 2u) << h;
  EXPECT_EQ(count("cc"), 1u) << "absent, listed once: " << h;
  EXPECT_EQ(count("reply-to"), 1u) << h;
  EXPECT_EQ(count("mime-version"), 1u) << h;
  EXPECT_EQ(count("content-type"), 1u) << h;
  EXPECT_EQ(count("x-mailer"), 0u) << h;
  EXPECT_EQ(count("received"), 0u) << h;
}

TEST_F(Fixture, EdgeCaseMessagesVerify) {
  const DkimSigner signer;
  const std::string long_line(5000, 'x');
  const std::vector<std::string> messages{
      "From: alice@example.test\r\n\r\n",  // empty body
      "From: alice@example.test\r\n",      // no body at all
      // A body without a final line end reaches us with the CRLF of "CRLF.CRLF" (RFC 5321
      // 4.1.1.4), which is what smtplib sends for one.
      "From: alice@example.test\r\nSubject: a\r\n\r\nno end\r\n",
      "From: alice@example.test\r\n\r\n" + long_line + "\r\n",
      "From: alice@example.test\r\nSubject: folded\r\n\tover\r\n  three lines\r\n\r\nx\r\n",
      "From: alice@example.test\r\nTo: a@b.test\r\nTo: c@d.test\r\n\r\ntwo To fields\r\n",
  };
  for (const auto& msg : messages) {
    for (const char* canon : {"relaxed/relaxed", "simple/simple"}) {
      SignerOptions o;
      parse_canonicalization(canon, o);
      const DkimSigner s(o);
      std::string error;
      const std::string m = signed_message(s, {&rsa, &ed}, msg, &error);
      ASSERT_EQ(error, "") << msg;
      const auto v = verify(m, {rsa.record, ed.record}, dir.path());
      ASSERT_EQ(v.size(), 2u) << msg;
      EXPECT_TRUE(v[0].pass && v[1].pass)
          << canon << " " << v[0].detail << " / " << v[1].detail << "\n"
          << m.substr(0, 300);
    }
  }
}

TEST_F(Fixture, Ed25519WithSimpleHeadersStaysVerifiableAndUnder998Octets) {
  SignerOptions o;
  parse_canonicalization("simple/simple", o);
  const DkimSigner signer(o);
  // Few fields: one unfolded line with simple header canonicalization.
  std::string m = signed_message(signer, {&ed}, kMessage);
  const std::string first = m.substr(0, m.find("\r\n"));
  EXPECT_NE(first.find("c=simple/simple"), std::string::npos) << first;
  EXPECT_NE(first.find(" b="), std::string::npos) << "one line: " << first;
  EXPECT_TRUE(verify(m, {ed.record}, dir.path()).at(0).pass);
  // 400 To: fields would make that line too long: relaxed header canonicalization instead.
  std::string many = "From: alice@example.test\r\n";
  for (int i = 0; i < 400; ++i) many += "To: r" + std::to_string(i) + "@example.net\r\n";
  m = signed_message(signer, {&ed}, many + "\r\nbody\r\n");
  EXPECT_NE(m.find("c=relaxed/simple"), std::string::npos);
  for (std::size_t pos = 0, next; pos < m.find("\r\n\r\n"); pos = next + 2) {
    next = m.find("\r\n", pos);
    EXPECT_LE(next - pos, 998u);
  }
  EXPECT_TRUE(verify(m, {ed.record}, dir.path()).at(0).pass);
}

TEST_F(Fixture, UnusableKeyRefusesToSign) {
  KeyRecord r = rsa.record;
  r.path = (dir.path() / "missing.pem").string();
  const SigningKey broken = load_signing_key(r, ::geteuid());
  ASSERT_FALSE(broken.usable());
  const DkimSigner signer;
  const SignResult res = signer.sign({&ed, &broken}, test::split(kMessage));
  EXPECT_TRUE(res.fields.empty());
  EXPECT_NE(res.error.find("missing.pem"), std::string::npos) << res.error;
}

TEST(Canonicalization, Parses) {
  SignerOptions o;
  ASSERT_TRUE(parse_canonicalization("simple/relaxed", o));
  EXPECT_EQ(o.header, Canonicalization::kSimple);
  EXPECT_EQ(o.body, Canonicalization::kRelaxed);
  ASSERT_TRUE(parse_canonicalization("relaxed", o));
  EXPECT_EQ(o.header, Canonicalization::kRelaxed);
  EXPECT_EQ(o.body, Canonicalization::kSimple);
  for (const char* bad : {"", "relaxed/", "loose/simple", "relaxed/relaxed/x", "RELAXED"}) {
    EXPECT_FALSE(parse_canonicalization(bad, o)) << bad;
  }
}

}  // namespace
}  // namespace truefrom::signer
