#include "signer/dkim/dkim_key.hpp"

#include <gtest/gtest.h>

#include "signer/dkim/key_ring.hpp"
#include "tests/unit/signer/dkim_test_support.hpp"

namespace truefrom::signer {
namespace {

struct KeyFiles : ::testing::Test {
  test::TempDir dir;
  SigningKey rsa = test::make_key(dir.path(), "example.test", "r1", Algorithm::kRsaSha256);
  SigningKey ed = test::make_key(dir.path(), "example.test", "e1", Algorithm::kEd25519Sha256);

  SigningKey load(KeyRecord r) { return load_signing_key(r, ::geteuid()); }
};

TEST_F(KeyFiles, GeneratedKeysLoad) {
  EXPECT_TRUE(rsa.usable()) << rsa.error;
  EXPECT_TRUE(ed.usable()) << ed.error;
  // RFC 8463 4.2: the Ed25519 p= is the raw 32-octet key, base64: 44 characters.
  EXPECT_EQ(ed.record.public_key.size(), 44u);
  // RSA-2048 SubjectPublicKeyInfo (294 octets) in base64.
  EXPECT_EQ(rsa.record.public_key.size(), 392u);
  EXPECT_EQ(rsa.record.public_key.rfind("MIIBIjAN", 0), 0u);
}

TEST_F(KeyFiles, ProblemsAreNamedWithTheFix) {
  struct Case {
    const char* name;
    std::function<KeyRecord()> setup;
    const char* want;
  };
  const std::vector<Case> cases{
      {"missing",
       [&] {
         KeyRecord r = rsa.record;
         r.path = (dir.path() / "nope.pem").string();
         return r;
       },
       "No such file or directory (restore the file, or retire the key"},
      {"group readable",
       [&] {
         KeyRecord r = rsa.record;
         ::chmod(r.path.c_str(), 0640);
         return r;
       },
       "may be read by group or others (mode 0640); run: chmod 600"},
      {"not a key",
       [&] {
         KeyRecord r = rsa.record;
         r.path = (dir.path() / "garbage.pem").string();
         test::write_file(r.path, "hello\n", 0600);
         return r;
       },
       "holds no PEM private key"},
      {"wrong algorithm",
       [&] {
         KeyRecord r = ed.record;
         r.algorithm = Algorithm::kRsaSha256;
         return r;
       },
       "holds an Ed25519 key, but the key is recorded as rsa-sha256"},
      {"replaced file",
       [&] {
         KeyRecord r = rsa.record;
         std::string error;
         test::write_file(r.path, generate_key(Algorithm::kRsaSha256, 1024, error)->pem, 0600);
         return r;
       },
       "does not match the public key recorded (and published in DNS) for "
       "r1._domainkey.example.test"},
      {"directory",
       [&] {
         KeyRecord r = rsa.record;
         r.path = dir.path().string();
         return r;
       },
       "is not a regular file"},
  };
  for (const auto& c : cases) {
    const SigningKey k = load(c.setup());
    EXPECT_FALSE(k.usable()) << c.name;
    EXPECT_NE(k.error.find(c.want), std::string::npos) << c.name << ": " << k.error;
    EXPECT_EQ(k.pkey, nullptr) << c.name;
  }
}

TEST_F(KeyFiles, OwnerMustBeTheServiceUser) {
  const SigningKey k = load_signing_key(rsa.record, ::geteuid() + 1);
  EXPECT_FALSE(k.usable());
  EXPECT_NE(k.error.find("not by uid " + std::to_string(::geteuid() + 1)), std::string::npos)
      << k.error;
}

TEST(DkimKey, ZoneLineSplitsLongRecords) {
  KeyRecord r;
  r.domain = "example.test";
  r.selector = "s1";
  r.public_key = std::string(392, 'A');
  const std::string line = dns_zone_line(r);
  EXPECT_EQ(line.rfind("s1._domainkey.example.test TXT \"v=DKIM1; k=rsa; p=AAA", 0), 0u) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos);
  // Two strings of at most 255 octets whose concatenation is the record text.
  const auto first = line.find('"');
  const auto mid = line.find("\" \"");
  ASSERT_NE(mid, std::string::npos);
  EXPECT_EQ(mid - first - 1, 255u);
  std::string joined;
  bool in = false;
  for (char c : line.substr(first)) {
    if (c == '"') {
      in = !in;
    } else if (in) {
      joined += c;
    }
  }
  EXPECT_EQ(joined, dns_record_text(Algorithm::kRsaSha256, r.public_key));
  r.algorithm = Algorithm::kEd25519Sha256;
  r.public_key = std::string(44, 'B');
  EXPECT_EQ(dns_zone_line(r),
            "s1._domainkey.example.test TXT \"v=DKIM1; k=ed25519; p=" + r.public_key + "\"");
}

TEST(DkimKey, Selectors) {
  for (const char* ok : {"s1", "2026-11", "mail.rsa", "a"}) EXPECT_TRUE(valid_selector(ok)) << ok;
  for (const char* bad : {"", "-a", "a-", "a..b", ".a", "a.", "a_b", "S1", "a b", "a/b"}) {
    EXPECT_FALSE(valid_selector(bad)) << bad;
  }
  EXPECT_FALSE(valid_selector(std::string(64, 'a')));
}

TEST(DkimKey, Algorithms) {
  EXPECT_EQ(parse_algorithm("rsa"), Algorithm::kRsaSha256);
  EXPECT_EQ(parse_algorithm("ed25519-sha256"), Algorithm::kEd25519Sha256);
  EXPECT_FALSE(parse_algorithm("rsa-sha1"));
  std::string error;
  EXPECT_FALSE(generate_key(Algorithm::kRsaSha256, 512, error));
  EXPECT_NE(error.find("1024 to 4096"), std::string::npos);
}

SigningKey fake(const std::string& domain, const std::string& selector, bool usable = true) {
  SigningKey k;
  k.record.domain = domain;
  k.record.selector = selector;
  if (!usable) k.error = "broken";
  return k;
}

TEST(KeyRing, SelectsDomainThenParentThenFallback) {
  const KeyRing ring(std::vector<SigningKey>{fake("example.test", "a"), fake("example.test", "b"),
                                             fake("provider.test", "p"), fake("test", "tld")});
  auto s = ring.select("example.test", "provider.test");
  EXPECT_EQ(s.domain, "example.test");
  EXPECT_EQ(s.keys.size(), 2u);
  EXPECT_FALSE(s.fallback);
  s = ring.select("mail.eu.example.test", "provider.test");
  EXPECT_EQ(s.domain, "example.test");
  s = ring.select("other.test", "provider.test");
  EXPECT_EQ(s.domain, "provider.test") << "a key for the TLD itself is never used";
  EXPECT_TRUE(s.fallback);
  s = ring.select("other.test", "");
  EXPECT_EQ(s.domain, "");
  EXPECT_TRUE(s.keys.empty());
  s = ring.select("", "provider.test");
  EXPECT_EQ(s.domain, "provider.test");
}

TEST_F(KeyFiles, ManagerRetriesBrokenKeysAfterTheInterval) {
  std::vector<std::string> log;
  KeyManager m(
      ::geteuid(), [&](bool, const std::string& line) { log.push_back(line); },
      std::chrono::seconds(0));
  ::chmod(rsa.record.path.c_str(), 0644);
  m.replace({rsa.record, ed.record});
  auto ring = m.current();
  auto s = ring->select("example.test", "");
  ASSERT_EQ(s.keys.size(), 2u);
  EXPECT_NE(s.problems().find("chmod 600"), std::string::npos) << s.problems();
  ::chmod(rsa.record.path.c_str(), 0600);
  ring = m.current();
  s = ring->select("example.test", "");
  EXPECT_EQ(s.problems(), "");
  EXPECT_NE(log.back().find("can be used again"), std::string::npos);
}

TEST_F(KeyFiles, ManagerLogsAKeyOnceUntilItChanges) {
  std::vector<std::string> log;
  KeyManager m(::geteuid(), [&](bool, const std::string& line) { log.push_back(line); });
  m.replace({rsa.record, ed.record});
  ASSERT_EQ(log.size(), 2u);
  // The server loads at start and again when its change listener comes up: same keys, no
  // second pair of lines.
  m.replace({rsa.record, ed.record});
  EXPECT_EQ(log.size(), 2u);
  // A key that can no longer be used is said again, and so is one that comes back.
  ::chmod(rsa.record.path.c_str(), 0644);
  m.replace({rsa.record, ed.record});
  ASSERT_EQ(log.size(), 3u);
  EXPECT_NE(log.back().find("chmod 600"), std::string::npos) << log.back();
  ::chmod(rsa.record.path.c_str(), 0600);
  m.replace({rsa.record});
  ASSERT_EQ(log.size(), 4u);
  EXPECT_NE(log.back().find("active"), std::string::npos) << log.back();
}

}  // namespace
}  // namespace truefrom::signer
