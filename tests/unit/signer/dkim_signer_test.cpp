#include "signer/dkim/dkim_signer.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

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

// Simple header canonicalization hashes the DKIM-Signature field exactly as folded, so the
// field written must be the field hashed: folded lines for every algorithm, also when very
// many signed fields make a long h= tag (libopendkim's signer got this wrong for Ed25519).
TEST_F(Fixture, SimpleHeadersFoldedSignatureVerifiesWithShortLines) {
  SignerOptions o;
  parse_canonicalization("simple/simple", o);
  const DkimSigner signer(o);
  std::string many = "From: alice@example.test\r\n";
  for (int i = 0; i < 400; ++i) many += "To: r" + std::to_string(i) + "@example.net\r\n";
  for (const std::string& msg : {kMessage, many + "\r\nbody\r\n"}) {
    const SignResult r = signer.sign({&rsa, &ed}, test::split(msg));
    ASSERT_EQ(r.error, "");
    std::string m;
    for (const std::string& field : r.fields) {
      EXPECT_NE(field.find("c=simple/simple"), std::string::npos);
      for (std::size_t pos = 0, next; pos < field.size(); pos = next + 2) {
        next = field.find("\r\n", pos);
        EXPECT_LE(next - pos, 78u) << field.substr(pos, next - pos);
      }
      m += field;
    }
    m += msg;
    const auto v = verify(m, {rsa.record, ed.record}, dir.path());
    ASSERT_EQ(v.size(), 2u);
    EXPECT_TRUE(v[0].pass) << v[0].detail;
    EXPECT_TRUE(v[1].pass) << v[1].detail;
  }
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

// RFC 6376 3.4.5's examples, and the corner cases of 3.4.3/3.4.4.
TEST(Canonicalization, HeaderFields) {
  EXPECT_EQ(canonical_header("A: X", Canonicalization::kRelaxed), "a:X\r\n");
  EXPECT_EQ(canonical_header("B : Y\t\r\n\tZ  ", Canonicalization::kRelaxed), "b:Y Z\r\n");
  EXPECT_EQ(canonical_header("B : Y\t\r\n\tZ  ", Canonicalization::kSimple),
            "B : Y\t\r\n\tZ  \r\n");
  EXPECT_EQ(canonical_header("Subject:", Canonicalization::kRelaxed), "subject:\r\n");
  EXPECT_EQ(canonical_header("X-Odd:  a \t b\r\n  c", Canonicalization::kRelaxed),
            "x-odd:a b c\r\n");
}

TEST(Canonicalization, Bodies) {
  const auto relaxed = [](std::string_view b) {
    return canonical_body(b, Canonicalization::kRelaxed);
  };
  const auto simple = [](std::string_view b) {
    return canonical_body(b, Canonicalization::kSimple);
  };
  // RFC 6376 3.4.5.
  EXPECT_EQ(relaxed(" C \r\nD \t E\r\n\r\n\r\n"), " C\r\nD E\r\n");
  EXPECT_EQ(simple(" C \r\nD \t E\r\n\r\n\r\n"), " C \r\nD \t E\r\n");
  // Empty bodies: one CRLF (simple), nothing (relaxed).
  for (std::string_view empty : {"", "\r\n", "\r\n\r\n"}) {
    EXPECT_EQ(simple(empty), "\r\n");
    EXPECT_EQ(relaxed(empty), "");
  }
  EXPECT_EQ(relaxed(" \t \r\n\t\r\n"), "") << "blank lines at the end are empty lines";
  // No final CRLF: one is added.
  EXPECT_EQ(simple("abc"), "abc\r\n");
  EXPECT_EQ(relaxed("abc  "), "abc\r\n");
  // Empty lines inside the body stay.
  EXPECT_EQ(relaxed("a\r\n\r\n \r\nb\r\n\r\n"), "a\r\n\r\n\r\nb\r\n");
  EXPECT_EQ(simple("a\r\n\r\nb\r\n\r\n"), "a\r\n\r\nb\r\n");
  // A bare CR or LF is not a line end.
  EXPECT_EQ(relaxed("a \n b\r\n"), "a \n b\r\n");
  // Long bodies come out whole across the internal flushes.
  std::string big;
  for (int i = 0; i < 3000; ++i) big += "line  " + std::to_string(i) + " \r\n";
  std::string expected;
  for (int i = 0; i < 3000; ++i) expected += "line " + std::to_string(i) + "\r\n";
  EXPECT_EQ(relaxed(big), expected);
}

// RFC 6376 3.4.4 written the plain way: split at CRLF, blanks at line ends dropped, runs of
// blanks made one space, empty lines at the end dropped, a CRLF after every line.
std::string relaxed_body_model(const std::string& body) {
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < body.size()) {
    const std::size_t end = body.find("\r\n", pos);
    const std::string line = body.substr(pos, end == std::string::npos ? end : end - pos);
    std::string out;
    bool blank = false;
    for (const char c : line) {
      if (c == ' ' || c == '\t') {
        blank = true;
        continue;
      }
      if (blank) out += ' ';
      blank = false;
      out += c;
    }
    lines.push_back(out);
    pos = end == std::string::npos ? body.size() : end + 2;
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  std::string out;
  for (const auto& l : lines) out += l + "\r\n";
  return out;
}

TEST(Canonicalization, RelaxedBodyAgreesWithThePlainModel) {
  std::mt19937 rng(11);
  // Mostly ordinary text, so that long unchanged runs alternate with changed lines.
  const std::string alphabet = "abcdefghij    \t\r\n\r\n\r\n.\n\r";
  for (int round = 0; round < 4000; ++round) {
    std::string body;
    const int n = static_cast<int>(rng() % 200);
    for (int i = 0; i < n; ++i) body += alphabet[rng() % alphabet.size()];
    ASSERT_EQ(canonical_body(body, Canonicalization::kRelaxed), relaxed_body_model(body))
        << ::testing::PrintToString(body);
  }
}

// Mostly clean text (long runs of unchanged lines go to the hash whole) with a defect now and
// then, at every position relative to the eight-octet steps: a tab, two spaces, a blank at a
// line's start or end, a bare CR or LF, blank lines in the middle and at the end, a last line
// without CRLF.
TEST(Canonicalization, RelaxedBodyOfMostlyCleanLinesAgreesWithThePlainModel) {
  std::mt19937 rng(7);
  const std::vector<std::string> defects = {"\t", "  ",       " \r\n",       "\r\n ", "\n",
                                            "\r", "\r\n\r\n", "\r\n \t\r\n", " \r",   "\n "};
  for (int round = 0; round < 3000; ++round) {
    std::string body;
    const int words = static_cast<int>(rng() % 300);
    for (int i = 0; i < words; ++i) {
      body.append(1 + rng() % 9, static_cast<char>('a' + rng() % 26));
      const unsigned r = rng() % 100;
      if (r < 12) {
        body += "\r\n";
      } else if (r < 14) {
        body += defects[rng() % defects.size()];
      } else {
        body += ' ';
      }
    }
    switch (rng() % 4) {
      case 0:
        break;
      case 1:
        body += "\r\n";
        break;
      case 2:
        body += " \r\n\r\n\t";
        break;
      default:
        body += defects[rng() % defects.size()];
        break;
    }
    ASSERT_EQ(canonical_body(body, Canonicalization::kRelaxed), relaxed_body_model(body))
        << ::testing::PrintToString(body);
  }
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
