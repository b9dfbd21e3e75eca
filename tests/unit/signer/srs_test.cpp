#include "signer/srs/srs.hpp"
#include "signer/srs/srs_rules.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace truefrom::signer::srs {
namespace {

// Vectors made by Mail::SRS 0.31 (Debian libmail-srs-perl, Guarded scheme) with
// tests/tools/mail_srs.pl, secret "s3cr3t", SRS_TIME=1790000000.
constexpr std::int64_t kNow = 1790000000;
constexpr std::int64_t kDay = 86400;

Srs make(std::vector<std::string> secrets = {"s3cr3t"}) {
  return Srs(SrsOptions{"srs.example.net", std::move(secrets), 4, 21});
}

TEST(Srs, ForwardMatchesMailSrs) {
  struct Case {
    std::string in, want;
  };
  const Case cases[] = {
      {"alice@example.com", "SRS0=rVy2=HN=example.com=alice@srs.example.net"},
      {"Bob.Smith@Example.COM", "SRS0=erHj=HN=Example.COM=Bob.Smith@srs.example.net"},
      {"a=b+c@d.example", "SRS0=15AL=HN=d.example=a=b+c@srs.example.net"},
      {"odd local@x.example", "SRS0=KqEX=HN=x.example=odd local@srs.example.net"},
      // an SRS0 address of another forwarder becomes SRS1 (its separator kept: "==")
      {"SRS0=abcd=TT=orig.example=user@fwd1.example",
       "SRS1=YufG=fwd1.example==abcd=TT=orig.example=user@srs.example.net"},
      // an SRS1 address keeps the first forwarder, hashed anew
      {"SRS1=XXXX=fwd1.example==HHHH=TT=orig.example=user@fwd2.example",
       "SRS1=Zl4s=fwd1.example==HHHH=TT=orig.example=user@srs.example.net"},
      // already ours: unchanged
      {"someone@SRS.example.net", "someone@SRS.example.net"},
  };
  const Srs srs = make();
  for (const auto& c : cases) {
    std::string error;
    const auto out = srs.forward(c.in, kNow, error);
    ASSERT_TRUE(out) << c.in << ": " << error;
    EXPECT_EQ(*out, c.want) << c.in;
  }
}

TEST(Srs, ReverseMailSrsAddresses) {
  struct Case {
    std::string in, want;
  };
  const Case cases[] = {
      {"SRS0=rVy2=HN=example.com=alice@srs.example.net", "alice@example.com"},
      {"SRS0=erHj=HN=Example.COM=Bob.Smith@srs.example.net", "Bob.Smith@Example.COM"},
      {"SRS0=15AL=HN=d.example=a=b+c@srs.example.net", "a=b+c@d.example"},
      // case smashed by some MTA on the way
      {"srs0=rvy2=hn=example.com=alice@srs.example.net", "alice@example.com"},
      {"SRS0+rVy2=HN=example.com=alice@srs.example.net", "alice@example.com"},
      {"SRS1=Zl4s=fwd1.example==HHHH=TT=orig.example=user@srs.example.net",
       "SRS0=HHHH=TT=orig.example=user@fwd1.example"},
      {"srs1=zl4s=fwd1.example==HHHH=TT=orig.example=user@srs.example.net",
       "SRS0=HHHH=TT=orig.example=user@fwd1.example"},
      // 21 days old: still valid
      {"SRS0=bRyM=GY=example.com=alice@srs.example.net", "alice@example.com"},
  };
  const Srs srs = make();
  for (const auto& c : cases) {
    std::string why;
    const auto out = srs.reverse(c.in, kNow, why);
    ASSERT_TRUE(out) << c.in << ": " << why;
    EXPECT_EQ(*out, c.want) << c.in;
  }
}

TEST(Srs, ReverseRefusals) {
  struct Case {
    std::string in, why;
  };
  const Case cases[] = {
      {"SRS0=6Y3v=GX=example.com=alice@srs.example.net", "expired"},  // 22 days old
      {"SRS0=rVy2=HN=example.com=mallory@srs.example.net", "invalid hash"},
      {"SRS0=rVy2=HN=evil.example=alice@srs.example.net", "invalid hash"},
      {"SRS0=rVy=HN=example.com=alice@srs.example.net", "invalid hash"},  // too short
      {"SRS0=rVy2=H!=example.com=alice@srs.example.net", "malformed SRS0 timestamp"},
      {"SRS0=rVy2=HN=example.com@srs.example.net", "malformed SRS0"},
      {"SRS1=Zl4s=fwd1.example@srs.example.net", "malformed SRS1"},
      {"SRS1=AAAA=fwd1.example==HHHH=TT=orig.example=user@srs.example.net", "invalid hash"},
      {"alice@example.com", "not an SRS address"},
      {"SRS2=x=y@srs.example.net", "not an SRS address"},
      {"no-at-sign", "not an address"},
  };
  const Srs srs = make();
  for (const auto& c : cases) {
    std::string why;
    EXPECT_FALSE(srs.reverse(c.in, kNow, why)) << c.in;
    EXPECT_NE(why.find(c.why), std::string::npos) << c.in << ": " << why;
  }
  // A timestamp from tomorrow is not valid either.
  std::string error, why;
  const auto future = srs.forward("alice@example.com", kNow + kDay, error);
  ASSERT_TRUE(future);
  EXPECT_FALSE(srs.reverse(*future, kNow, why));
  EXPECT_NE(why.find("expired"), std::string::npos) << why;
}

TEST(Srs, SecretRotation) {
  // Made with the old secret (Mail::SRS: SRS0=u01C=HN=...), verified after rotation.
  const Srs rotated = make({"s3cr3t", "old"});
  std::string why, error;
  const auto back = rotated.reverse("SRS0=u01C=HN=example.com=alice@srs.example.net", kNow, why);
  ASSERT_TRUE(back) << why;
  EXPECT_EQ(*back, "alice@example.com");
  // The first secret signs.
  EXPECT_EQ(*rotated.forward("alice@example.com", kNow, error),
            "SRS0=rVy2=HN=example.com=alice@srs.example.net");
  // Without the old secret it no longer verifies.
  EXPECT_FALSE(make().reverse("SRS0=u01C=HN=example.com=alice@srs.example.net", kNow, why));
}

TEST(Srs, RoundTripAndTimestamps) {
  const Srs srs = make();
  EXPECT_EQ(Srs::timestamp(kNow), "HN");
  EXPECT_EQ(Srs::timestamp(0), "AA");
  EXPECT_EQ(Srs::timestamp(1023 * kDay), "77");
  EXPECT_EQ(Srs::timestamp(1024 * kDay), "AA");  // the cycle wraps
  for (const char* in : {"x@y.example", "Long.Name+tag@sub.domain.example", "a=b@c.example"}) {
    std::string error, why;
    const auto fwd = srs.forward(in, kNow, error);
    ASSERT_TRUE(fwd) << error;
    const auto back = srs.reverse(*fwd, kNow + 20 * kDay, why);
    ASSERT_TRUE(back) << why;
    EXPECT_EQ(*back, in);
  }
}

TEST(Srs, LongAddresses) {
  const Srs srs = make();
  std::string error;
  // A 64-octet local part grows past 64 octets: produced, not truncated (as Mail::SRS).
  const std::string local(64, 'l');
  const auto out = srs.forward(local + "@example.com", kNow, error);
  ASSERT_TRUE(out) << error;
  EXPECT_EQ(*out, "SRS0=" + out->substr(5, 4) + "=HN=example.com=" + local + "@srs.example.net");
  // Too long for an SMTP path: refused with the reason.
  EXPECT_FALSE(
      srs.forward(std::string(200, 'l') + "@" + std::string(40, 'd') + ".example", kNow, error));
  EXPECT_NE(error.find("longer than an SMTP path allows"), std::string::npos) << error;
  EXPECT_FALSE(srs.forward("nodomain", kNow, error));
}

TEST(Srs, TagDetection) {
  EXPECT_TRUE(is_srs_local_part("SRS0=a=b=c=d"));
  EXPECT_TRUE(is_srs_local_part("srs1+x"));
  EXPECT_TRUE(is_srs_local_part("Srs0-x"));
  EXPECT_FALSE(is_srs_local_part("SRS0"));
  EXPECT_FALSE(is_srs_local_part("SRS2=x"));
  EXPECT_FALSE(is_srs_local_part("srsx"));
}

class SecretsFile : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() / ("srs-secrets-" + std::to_string(::getpid()));
  }
  void TearDown() override { std::filesystem::remove(path_); }
  void write(const std::string& text, unsigned mode) {
    std::ofstream(path_, std::ios::binary) << text;
    ::chmod(path_.c_str(), mode);
  }
  std::filesystem::path path_;
};

TEST_F(SecretsFile, Loads) {
  write("new-secret\r\n\nold-secret\n", 0600);
  std::string error;
  const auto s = load_secrets(path_, error);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(*s, (std::vector<std::string>{"new-secret", "old-secret"}));
}

TEST_F(SecretsFile, Errors) {
  std::string error;
  EXPECT_FALSE(load_secrets(path_, error));
  EXPECT_NE(error.find("is missing"), std::string::npos) << error;
  write("\n\n", 0600);
  EXPECT_FALSE(load_secrets(path_, error));
  EXPECT_NE(error.find("holds no secret"), std::string::npos) << error;
  write("secret\n", 0644);
  EXPECT_FALSE(load_secrets(path_, error));
  EXPECT_NE(error.find("chmod 600"), std::string::npos) << error;
}

}  // namespace
}  // namespace truefrom::signer::srs

namespace truefrom::signer::srs {
namespace {

TEST(SrsRules, MostSpecificRuleWins) {
  const SrsRules rules({
      {1, "example.com", SrsAction::kRefuse, ""},
      {2, "partner.example.com", SrsAction::kPass, ""},
      {3, "example.com", SrsAction::kPass, "alice@isp.test"},
      {4, "bank.test", SrsAction::kRefuse, ""},
      {5, "deep.partner.example.com", SrsAction::kRewrite, "bob@isp.test"},
  });
  struct Case {
    std::string domain, login;
    SrsAction want;
    std::string reason;
  };
  const Case cases[] = {
      {"other.test", "alice@isp.test", SrsAction::kRewrite, "no SRS rule for other.test"},
      {"example.com", "carol@isp.test", SrsAction::kRefuse, "#1 (example.com, global: refuse)"},
      {"mail.example.com", "carol@isp.test", SrsAction::kRefuse, "#1"},
      {"example.com", "ALICE@isp.test", SrsAction::kPass, "#3 (example.com, account alice"},
      {"partner.example.com", "alice@isp.test", SrsAction::kPass, "#2"},  // longer domain
      {"deep.partner.example.com", "bob@isp.test", SrsAction::kRewrite, "#5"},
      {"deep.partner.example.com", "carol@isp.test", SrsAction::kPass, "#2"},
      {"notexample.com", "carol@isp.test", SrsAction::kRewrite, "no SRS rule"},  // not a suffix
      {"bank.test", "alice@isp.test", SrsAction::kRefuse, "#4"},
  };
  for (const auto& c : cases) {
    const auto v = rules.decide(c.domain, c.login);
    EXPECT_EQ(v.action, c.want) << c.domain << " " << c.login;
    EXPECT_NE(v.reason.find(c.reason), std::string::npos) << v.reason;
  }
}

TEST(SrsRules, Actions) {
  SrsAction a{};
  EXPECT_TRUE(parse_action("pass", a));
  EXPECT_EQ(a, SrsAction::kPass);
  EXPECT_FALSE(parse_action("Pass", a));
  EXPECT_FALSE(parse_action("drop", a));
  EXPECT_EQ(action_name(SrsAction::kRefuse), "refuse");
}

}  // namespace
}  // namespace truefrom::signer::srs
