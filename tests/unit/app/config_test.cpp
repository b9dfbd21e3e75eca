#include "submission/app/config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace truefrom::app {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/truefrom-config-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path write(const std::string& text) {
    auto p = dir_ / "truefrom.toml";
    std::ofstream(p) << text;
    return p;
  }
  std::filesystem::path dir_;
};

const char* kValid =
    "[server]\nhostname = \"mail.example.test\"\nmax_recipients = 7\n"
    "[listen]\nsubmission = \"127.0.0.1:2587\"\nsubmissions = \"[::1]:2465\"\n"
    "[tls]\ncertificate = \"cert.pem\"\nprivate_key = \"/abs/key.pem\"\n"
    "[relay]\nhost = \"relay.example.test\"\nport = 2525\nstarttls = \"required\"\n"
    "[state]\ndir = \"state\"\n";

TEST_F(ConfigTest, LoadsValidFileAndResolvesRelativePaths) {
  std::string err;
  auto c = load_config(write(kValid), err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->hostname, "mail.example.test");
  EXPECT_EQ(c->max_recipients, 7u);
  EXPECT_EQ(c->submission->to_string(), "127.0.0.1:2587");
  EXPECT_EQ(c->submissions->host, "::1");
  EXPECT_EQ(c->certificate, dir_ / "cert.pem");
  EXPECT_EQ(c->private_key, "/abs/key.pem");
  EXPECT_EQ(c->relay.starttls, relay::RelayTls::kRequired);
  EXPECT_EQ(c->state_dir, dir_ / "state");
  EXPECT_FALSE(c->database_url);
}

TEST_F(ConfigTest, RefusalsNameFileLineAndReason) {
  struct Case {
    std::string replace;  // appended to a valid file
    std::string want;     // must appear in the error
  };
  const Case cases[] = {
      {"[relay2]\nx = 1\n", "unknown section [relay2]"},
      {"[database]\nurl = 5\n", "database.url must be a string"},
      {"[server2]\n", "unknown section"},
  };
  for (const auto& c : cases) {
    std::string err;
    EXPECT_FALSE(load_config(write(std::string(kValid) + c.replace), err));
    EXPECT_NE(err.find(c.want), std::string::npos) << err;
    EXPECT_NE(err.find("truefrom.toml"), std::string::npos) << err;
  }
  std::string err;
  std::string text = kValid;
  text.replace(text.find("port = 2525"), 11, "hots = \"x\"");
  EXPECT_FALSE(load_config(write(text), err));
  EXPECT_NE(err.find("unknown key \"hots\" in [relay]"), std::string::npos) << err;
  EXPECT_NE(err.find(" 12 | hots"), std::string::npos) << "line number missing: " << err;
  text = kValid;
  text.replace(text.find("\"required\""), 10, "\"maybe\"");
  EXPECT_FALSE(load_config(write(text), err));
  EXPECT_NE(err.find("relay.starttls must be none, opportunistic or required"), std::string::npos);
  text = kValid;
  text.replace(text.find("127.0.0.1:2587"), 14, "127.0.0.1");
  EXPECT_FALSE(load_config(write(text), err));
  EXPECT_NE(err.find("not host:port"), std::string::npos);
  EXPECT_FALSE(load_config(dir_ / "missing.toml", err));
  EXPECT_NE(err.find("no such configuration file"), std::string::npos);
  EXPECT_FALSE(load_config(write("[server\n"), err));
}

TEST_F(ConfigTest, ServiceUserDefaultsAndRefusals) {
  std::string err;
  auto c = load_config(write(kValid), err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->user, "truefrom");
  EXPECT_FALSE(c->run_as_root);
  std::string text = kValid;
  text.replace(text.find("max_recipients = 7"), 18,
               "max_recipients = 7\nuser = \"mailer\"\nrun_as_root = true");
  c = load_config(write(text), err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->user, "mailer");
  EXPECT_TRUE(c->run_as_root);
  for (const char* bad : {"user = \"a b\"", "user = \"../x\"", "user = \"x:y\""}) {
    text = kValid;
    text.replace(text.find("max_recipients = 7"), 18, std::string("max_recipients = 7\n") + bad);
    EXPECT_FALSE(load_config(write(text), err)) << bad;
    EXPECT_NE(err.find("server.user is not a user name"), std::string::npos) << err;
  }
}

TEST(ParseEndpoint, Table) {
  EXPECT_TRUE(parse_endpoint("0.0.0.0:587"));
  EXPECT_TRUE(parse_endpoint("[::]:465"));
  EXPECT_FALSE(parse_endpoint("::1:25"));
  EXPECT_FALSE(parse_endpoint("host:0"));
  EXPECT_FALSE(parse_endpoint("host:65536"));
  EXPECT_FALSE(parse_endpoint(":25"));
  EXPECT_FALSE(parse_endpoint("host:25x"));
}

TEST_F(ConfigTest, PolicySection) {
  std::string err;
  auto c = load_config(write(kValid), err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->policy.subaddress_separators, "+");
  EXPECT_TRUE(c->policy.allow_null_sender);
  EXPECT_TRUE(c->policy.refuse_address_in_display_name);
  EXPECT_FALSE(c->policy.require_alignment);
  c = load_config(write(std::string(kValid) +
                        "[policy]\nsubaddress_separators = \"\"\nlocal_part_case_sensitive = true\n"
                        "allow_null_sender = false\nrefuse_address_in_display_name = false\n"
                        "require_alignment = true\n"),
                  err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->policy.subaddress_separators, "");
  EXPECT_TRUE(c->policy.local_part_case_sensitive);
  EXPECT_FALSE(c->policy.allow_null_sender);
  EXPECT_FALSE(c->policy.refuse_address_in_display_name);
  EXPECT_TRUE(c->policy.require_alignment);
  EXPECT_FALSE(
      load_config(write(std::string(kValid) + "[policy]\nrequire_alignment = \"yes\"\n"), err));
  EXPECT_NE(err.find("policy.require_alignment must be true or false"), std::string::npos) << err;
  EXPECT_FALSE(
      load_config(write(std::string(kValid) + "[policy]\nsubaddress_separators = \"@\"\n"), err));
  EXPECT_NE(err.find("subaddress_separators"), std::string::npos) << err;
  EXPECT_FALSE(load_config(write(std::string(kValid) + "[policy]\nstrict = true\n"), err));
  EXPECT_NE(err.find("unknown key \"strict\" in [policy]"), std::string::npos) << err;
}

TEST_F(ConfigTest, ThrottleSection) {
  std::string err;
  auto c = load_config(write(kValid), err);
  ASSERT_TRUE(c) << err;
  // Defaults protect a fresh install; loopback (webmail on this host) is allowed.
  EXPECT_TRUE(c->throttle_enabled);
  EXPECT_EQ(c->throttle.block_after, 10u);
  EXPECT_EQ(c->throttle.window, std::chrono::seconds(600));
  EXPECT_EQ(c->throttle.block_time, std::chrono::seconds(900));
  ASSERT_EQ(c->throttle.allow.size(), 2u);
  EXPECT_TRUE(c->throttle.allow[0].contains(*policy::parse_ip("127.0.0.5")));
  EXPECT_EQ(c->connection_limits.concurrent, 30u);
  c = load_config(
      write(std::string(kValid) +
            "[throttle]\nenabled = false\nauth_window = 60\nauth_delay_after = 2\n"
            "auth_first_delay_ms = 100\nauth_max_delay_ms = 200\n"
            "auth_block_after = 4\nauth_block_time = 30\naccount_block_after = 5\n"
            "remember_good_days = 7\nconnections_per_network = 3\n"
            "connections_per_minute = 0\nallow = [\"192.0.2.0/24\", \"2001:db8::/32\"]\n"),
      err);
  ASSERT_TRUE(c) << err;
  EXPECT_FALSE(c->throttle_enabled);
  EXPECT_EQ(c->throttle.window, std::chrono::seconds(60));
  EXPECT_EQ(c->throttle.delay_after, 2u);
  EXPECT_EQ(c->throttle.first_delay, std::chrono::milliseconds(100));
  EXPECT_EQ(c->throttle.max_delay, std::chrono::milliseconds(200));
  EXPECT_EQ(c->throttle.block_after, 4u);
  EXPECT_EQ(c->throttle.block_time, std::chrono::seconds(30));
  EXPECT_EQ(c->throttle.account_block_after, 5u);
  EXPECT_EQ(c->throttle.remember_good, std::chrono::seconds(7 * 86400));
  EXPECT_EQ(c->connection_limits.concurrent, 3u);
  EXPECT_EQ(c->connection_limits.per_minute, 0u);
  ASSERT_EQ(c->connection_limits.allow.size(), 2u);
  EXPECT_FALSE(c->throttle.allow[0].contains(*policy::parse_ip("127.0.0.1")));
  struct Case {
    std::string text;
    std::string want;
  };
  const Case cases[] = {
      {"allow = [\"10.0.0.0/33\"]\n", "the prefix length must be 0-32"},
      {"allow = [\"webmail\"]\n", "not an IP address or CIDR network"},
      {"allow = \"10.0.0.0/8\"\n", "throttle.allow must be a list of networks"},
      {"auth_block_after = 0\n", "throttle.auth_block_after"},
      {"auth_first_delay_ms = 500\nauth_max_delay_ms = 100\n",
       "below throttle.auth_first_delay_ms"},
      {"block_after = 3\n", "unknown key \"block_after\" in [throttle]"},
  };
  for (const auto& k : cases) {
    EXPECT_FALSE(load_config(write(std::string(kValid) + "[throttle]\n" + k.text), err)) << k.text;
    EXPECT_NE(err.find(k.want), std::string::npos) << k.text << ": " << err;
  }
}

TEST_F(ConfigTest, DkimSection) {
  std::string err;
  auto c = load_config(write(kValid), err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->dkim_key_dir, c->state_dir / "dkim");
  EXPECT_EQ(c->dkim_signing.header, signer::Canonicalization::kRelaxed);
  EXPECT_EQ(c->dkim_signing.body, signer::Canonicalization::kRelaxed);
  EXPECT_EQ(c->dkim_fallback_domain, "");
  EXPECT_TRUE(c->dkim_tempfail_on_key_error);
  c = load_config(write(std::string(kValid) +
                        "[dkim]\nkey_dir = \"keys\"\ncanonicalization = \"simple/relaxed\"\n"
                        "fallback_domain = \"B\u00fccher.Example\"\non_key_error = \"unsigned\"\n"),
                  err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->dkim_key_dir, c->file.parent_path() / "keys");
  EXPECT_EQ(c->dkim_signing.header, signer::Canonicalization::kSimple);
  EXPECT_EQ(c->dkim_signing.body, signer::Canonicalization::kRelaxed);
  EXPECT_EQ(c->dkim_fallback_domain, "xn--bcher-kva.example");
  EXPECT_FALSE(c->dkim_tempfail_on_key_error);
  const std::vector<std::pair<std::string, std::string>> bad{
      {"canonicalization = \"loose\"", "dkim.canonicalization must be HEADER/BODY"},
      {"fallback_domain = \"localhost\"", "dkim.fallback_domain is not a domain name"},
      {"on_key_error = \"ignore\"", "dkim.on_key_error must be tempfail or unsigned"},
      {"selector = \"s1\"", "unknown key \"selector\" in [dkim]"},
  };
  for (const auto& [line, want] : bad) {
    EXPECT_FALSE(load_config(write(std::string(kValid) + "[dkim]\n" + line + "\n"), err)) << line;
    EXPECT_NE(err.find(want), std::string::npos) << err;
  }
}

const char* kBase =
    "[server]\nhostname = \"mail.example.test\"\n"
    "[listen]\nsubmission = \"127.0.0.1:2587\"\n"
    "[tls]\ncertificate = \"cert.pem\"\nprivate_key = \"key.pem\"\n";

TEST_F(ConfigTest, RelayAndQueueSections) {
  std::string fingerprint = "sha256:AB";
  for (int i = 0; i < 31; ++i) fingerprint += ":AB";
  std::string err;
  auto c = load_config(write(kValid), err);
  ASSERT_TRUE(c) << err;
  EXPECT_TRUE(c->queue_mode);  // the default
  EXPECT_EQ(c->queue_dir, c->state_dir / "queue");
  EXPECT_EQ(c->queue.lifetime, std::chrono::hours(5 * 24));
  ASSERT_EQ(c->relay.hosts.size(), 1u);
  EXPECT_EQ(c->relay.hosts[0].to_string(), "relay.example.test:2525");
  c = load_config(
      write(std::string(kBase) +
            "[relay]\nmode = \"passthrough\"\nhosts = [\"a.example:25\", \"[2001:db8::1]:587\"]\n"
            "ca_file = \"ca.pem\"\nusername = \"u\"\npassword = \"p\"\nconnections = 3\n"
            "fingerprint = \"" +
            fingerprint +
            "\"\n[queue]\nretry_first = 10\nretry_max = 20\nlifetime = 100\ndir = \"q\"\n"),
      err);
  ASSERT_TRUE(c) << err;
  EXPECT_FALSE(c->queue_mode);
  ASSERT_EQ(c->relay.hosts.size(), 2u);
  EXPECT_EQ(c->relay.hosts[1].host, "2001:db8::1");
  EXPECT_EQ(c->relay.hosts[1].port, 587);
  EXPECT_EQ(c->relay.ca_file, (c->file.parent_path() / "ca.pem").string());
  EXPECT_EQ(c->relay.fingerprint.size(), 32u);
  EXPECT_EQ(c->relay.max_idle_connections, 3u);
  EXPECT_EQ(c->queue.retry_first, std::chrono::seconds(10));
  EXPECT_EQ(c->queue_dir, c->file.parent_path() / "q");
  // The relay's timeouts: defaults, then each key.
  EXPECT_EQ(c->relay.timeouts.connect, std::chrono::seconds(10));
  EXPECT_EQ(c->relay.timeouts.greeting, std::chrono::seconds(30));
  EXPECT_EQ(c->relay.timeouts.command, std::chrono::seconds(30));
  EXPECT_EQ(c->relay.timeouts.data, std::chrono::seconds(120));
  EXPECT_EQ(c->relay.check_after, std::chrono::seconds(5));
  c = load_config(write(std::string(kBase) +
                        "[relay]\nhost = \"r\"\nconnect_timeout = 1\ngreeting_timeout = 2\n"
                        "command_timeout = 3\ndata_timeout = 4\nidle_limit = 5\n"
                        "check_after = 0\ncheck_timeout = 6\nprobe_max = 7\n"),
                  err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->relay.timeouts.connect, std::chrono::seconds(1));
  EXPECT_EQ(c->relay.timeouts.greeting, std::chrono::seconds(2));
  EXPECT_EQ(c->relay.timeouts.command, std::chrono::seconds(3));
  EXPECT_EQ(c->relay.timeouts.data, std::chrono::seconds(4));
  EXPECT_EQ(c->relay.idle_limit, std::chrono::seconds(5));
  EXPECT_EQ(c->relay.check_after, std::chrono::seconds(0));
  EXPECT_EQ(c->relay.check_timeout, std::chrono::seconds(6));
  EXPECT_EQ(c->relay.probe_max, std::chrono::seconds(7));
  const std::vector<std::pair<std::string, std::string>> bad{
      {"[relay]\nhost = \"r\"\nmode = \"store\"\n", "relay.mode must be queue or passthrough"},
      {"[relay]\nhost = \"r\"\nhosts = [\"r:25\"]\n", "either relay.host"},
      {"[relay]\nhosts = [\"r\"]\n", "not \"host:port\""},
      {"[relay]\nhost = \"r\"\nfingerprint = \"AB:CD\"\n", "not a SHA-256 fingerprint"},
      {"[relay]\nhost = \"r\"\nstarttls = \"opportunistic\"\nusername = \"u\"\npassword = \"p\"\n",
       "relay.username needs starttls = \"required\""},
      {"[relay]\nhost = \"r\"\nusername = \"u\"\n", "relay.username needs relay.password"},
      {"[relay]\nhost = \"r\"\nstarttls = \"none\"\nca_file = \"x\"\n", "need starttls"},
      {"[relay]\nhost = \"r\"\n[queue]\nretry_first = 100\nretry_max = 10\n",
       "retry_max is shorter"},
      {"[relay]\nhost = \"r\"\n[srs]\nsecrets_file = \"s\"\n", "[srs] domain is required"},
      // The single timeout of older versions: refused, with what to write instead.
      {"[relay]\nhost = \"r\"\ntimeout = 90\n",
       "relay.timeout is replaced by one timeout per phase"},
      {"[relay]\nhost = \"r\"\ntimeout = 90\n", "command_timeout = 90"},
      {"[relay]\nhost = \"r\"\ngreeting_timeout = 0\n", "relay.greeting_timeout is out of range"},
      {"[relay]\nhost = \"r\"\ndata_timeout = \"2m\"\n", "relay.data_timeout must be an integer"},
      {"[relay]\nhost = \"r\"\n[srs]\ndomain = \"srs.example.net\"\n",
       "[srs] secrets_file is required"},
      {"[relay]\nhost = \"r\"\n[srs]\ndomain = \"localhost\"\nsecrets_file = \"s\"\n",
       "srs.domain is not a domain name"},
  };
  for (const auto& [text, want] : bad) {
    EXPECT_FALSE(load_config(write(std::string(kBase) + text), err)) << text;
    EXPECT_NE(err.find(want), std::string::npos) << err;
  }
  c = load_config(
      write(std::string(kBase) +
            "[relay]\nhost = \"r\"\n[srs]\ndomain = \"SRS.Example.NET\"\n"
            "secrets_file = \"srs.secrets\"\nmax_age = 7\nsocketmap = \"127.0.0.1:10003\"\n"),
      err);
  ASSERT_TRUE(c) << err;
  EXPECT_TRUE(c->srs_enabled);
  EXPECT_EQ(c->srs.domain, "srs.example.net");
  EXPECT_EQ(c->srs.max_age_days, 7u);
  EXPECT_EQ(c->srs_secrets_file, c->file.parent_path() / "srs.secrets");
  EXPECT_EQ(c->srs_socketmap->port, 10003);
}

TEST_F(ConfigTest, SampleConfigLoads) {
  std::string err;
  const auto c = load_config(TRUEFROM_SOURCE_DIR "/contrib/truefrom.toml.sample", err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->policy.subaddress_separators, "+");
}

}  // namespace
}  // namespace truefrom::app
