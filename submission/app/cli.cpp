#include "submission/app/cli.hpp"

#include <iostream>

#include "submission/app/service_user.hpp"

namespace truefrom::app {
namespace {

const char* const kUsage =
    "usage: truefrom COMMAND [ARGS] [--config FILE]\n"
    "\n"
    "commands:\n"
    "  serve                          run the submission server (foreground)\n"
    "  db migrate                     create or upgrade the database schema\n"
    "  account add LOGIN --password-stdin\n"
    "  account passwd LOGIN --password-stdin\n"
    "  account enable LOGIN | account disable LOGIN\n"
    "  account remove LOGIN\n"
    "  account set LOGIN --forwarder yes|no\n"
    "  account suspend LOGIN [--reason TEXT] | account resume LOGIN\n"
    "  account list\n"
    "  sender add LOGIN ADDRESS [--on-behalf]\n"
    "                                 ADDRESS: user@domain (exact) or domain (any local part)\n"
    "  sender remove LOGIN ADDRESS\n"
    "  sender list [LOGIN]\n"
    "  check LOGIN --mail-from ADDRESS [--message FILE]\n"
    "                                 why would this account's mail be accepted or refused?\n"
    "  dkim keygen DOMAIN [--selector S] [--algorithm rsa|ed25519] [--bits 2048]\n"
    "  dkim activate DOMAIN SELECTOR | dkim retire DOMAIN SELECTOR\n"
    "  dkim list [DOMAIN] | dkim dns DOMAIN\n"
    "  queue list [--account LOGIN] [--json] | queue show ID | queue flush\n"
    "  queue hold|release|delete ID | queue hold|release|delete --account LOGIN\n"
    "  srs rule add DOMAIN rewrite|refuse|pass [--account LOGIN]\n"
    "  srs rule remove DOMAIN [--account LOGIN] | srs rule list\n"
    "  srs encode ADDRESS | srs decode ADDRESS\n"
    "  limits set LOGIN|DOMAIN|default KEY=VALUE...\n"
    "  limits show LOGIN | limits reset LOGIN | limits list\n"
    "  config check                   what serve would trip over, each with its fix\n"
    "\n"
    "options:\n"
    "  --config FILE    configuration (default /etc/truefrom/truefrom.toml)\n"
    "  --help           help for any command, e.g. truefrom account --help\n"
    "  --version        the version of truefrom and of the OpenSSL it runs on\n";

const std::map<std::string, std::string> kHelp{
    {"serve",
     "usage: truefrom serve [--config FILE]\n"
     "Runs the server in the foreground, logging to stderr. SIGTERM or SIGINT stop it:\n"
     "the listeners close, sessions between transactions get 421 4.3.2 at once, a\n"
     "transaction under way finishes first (at most [server] drain_timeout). SIGHUP is\n"
     "logged and changes nothing (restart to apply a new config). Started as root, it\n"
     "runs as [server] user once its ports are bound. Without [database] url, a private\n"
     "PostgreSQL cluster is started under [state] dir and the schema is created.\n"},
    {"db",
     "usage: truefrom db migrate [--config FILE]\n"
     "Applies the schema migrations that are missing, in one transaction. Safe to repeat.\n"},
    {"account",
     "usage: truefrom account add LOGIN --password-stdin [--config FILE]\n"
     "       truefrom account passwd LOGIN --password-stdin\n"
     "       truefrom account enable LOGIN | disable LOGIN | remove LOGIN\n"
     "       truefrom account set LOGIN --forwarder yes|no\n"
     "       truefrom account suspend LOGIN [--reason TEXT] | resume LOGIN\n"
     "       truefrom account list\n"
     "The password is the first line of standard input, e.g.\n"
     "  printf '%s\\n' 'secret' | truefrom account add alice@example.com --password-stdin\n"
     "It is stored as a yescrypt hash. Logins are matched case-insensitively.\n"
     "A forwarder account may submit with foreign envelope senders (forwarded mail); the\n"
     "headers of its messages are the original author's and are not bound.\n"
     "A suspended account (a stolen password) still logs in, but every MAIL FROM gets\n"
     "550 5.7.1 with [suspension] contact, its open sessions end at their next command, and\n"
     "its queued messages are held (suspend holds them; see truefrom queue list --account).\n"
     "Servers suspend accounts themselves when a [suspension] trigger fires, and tell the\n"
     "[suspension] notify addresses. resume lets it send again; its held messages stay held\n"
     "until you release or delete them (truefrom queue release|delete --account LOGIN).\n"
     "list shows suspended accounts with when and why.\n"},
    {"sender",
     "usage: truefrom sender add LOGIN ADDRESS [--on-behalf] [--config FILE]\n"
     "       truefrom sender remove LOGIN ADDRESS\n"
     "       truefrom sender list [LOGIN]\n"
     "ADDRESS is an exact address (alice@example.com) or a whole domain (example.com);\n"
     "internationalized domains may be written in either form (bücher.example or\n"
     "xn--bcher-kva.example). Owning alice@example.com also covers its subaddresses\n"
     "(alice+news@example.com, see [policy] subaddress_separators).\n"
     "Without --on-behalf the account sends AS the address: it may use it in MAIL FROM,\n"
     "From: and Sender:. With --on-behalf it may put it in From: only with its own address\n"
     "in Sender: (added by truefrom when the client did not). Adding an identity again with\n"
     "the other form changes it. The list shows each row's id, which the Received: header\n"
     "and the log name when the row allowed a message.\n"},
    {"dkim",
     "usage: truefrom dkim keygen DOMAIN [--selector S] [--algorithm rsa|ed25519] [--bits N]\n"
     "       truefrom dkim activate DOMAIN SELECTOR\n"
     "       truefrom dkim retire DOMAIN SELECTOR\n"
     "       truefrom dkim list [DOMAIN]\n"
     "       truefrom dkim dns DOMAIN\n"
     "keygen makes a key (RSA 2048 bits by default, or Ed25519), writes the private key to\n"
     "[dkim] key_dir (mode 0600, owned like key_dir), records it as pending and prints the\n"
     "DNS TXT record to publish. The default selector is the date and algorithm, e.g.\n"
     "20261123-rsa. Once the record is in DNS, activate the key: it signs from then on\n"
     "(running servers pick the change up within a second). Activating a key retires the\n"
     "domain's active key of the same algorithm, so rotation is: keygen, publish, activate.\n"
     "An RSA and an Ed25519 key active together give two signatures (RFC 8463). Keep a\n"
     "retired key's record in DNS a few days for mail still in flight. dns prints the\n"
     "records of the domain's pending and active keys, one line each:\n"
     "  selector._domainkey.domain TXT \"v=DKIM1; k=...; p=...\"\n"
     "Mail is signed for its From: domain, else the closest parent domain with an active\n"
     "key, else [dkim] fallback_domain, else it leaves unsigned (logged).\n"},
    {"queue",
     "usage: truefrom queue list [--account LOGIN] [--json] [--config FILE]\n"
     "       truefrom queue show ID\n"
     "       truefrom queue flush\n"
     "       truefrom queue hold ID | release ID | delete ID\n"
     "       truefrom queue hold|release|delete --account LOGIN\n"
     "Works on the spool in [queue] dir, of a running server (which is told at once) or of\n"
     "a stopped one (changes apply when it starts). list prints one line per message: id,\n"
     "state (active, deferred or held), age, size, sender, recipients still to deliver and\n"
     "the last error. show prints the envelope, the delivery state and the message's\n"
     "header. flush makes every deferred message due now. hold keeps a message from being\n"
     "delivered until release; delete removes it without a report to the sender. A message\n"
     "being delivered at that moment cannot be changed: try again a second later.\n"
     "With --account LOGIN, list, hold, release and delete work on that account's messages\n"
     "(e.g. after a suspension). A suspended account's messages are held again when the\n"
     "server comes to deliver them: resume the account first, or delete them.\n"
     "list --json prints a JSON array, one object per message and line: id, state,\n"
     "arrival and next_attempt (unix seconds), size, mail_from, recipients (still to\n"
     "deliver), user, attempts, last_error.\n"},
    {"srs",
     "usage: truefrom srs rule add DOMAIN rewrite|refuse|pass [--account LOGIN] [--config FILE]\n"
     "       truefrom srs rule remove DOMAIN [--account LOGIN]\n"
     "       truefrom srs rule list\n"
     "       truefrom srs encode ADDRESS\n"
     "       truefrom srs decode ADDRESS\n"
     "A forwarder account (account set LOGIN --forwarder yes) may submit mail whose envelope\n"
     "sender is someone else's. With [srs] configured, such a sender is rewritten to an\n"
     "SRS address in [srs] domain (SRS0=HASH=TT=domain=local@srs-domain; SRS1 for senders\n"
     "that are SRS addresses already), so SPF passes for the provider and bounces come back\n"
     "through it; the reverse service ([srs] socketmap) maps them back. Rules change that per\n"
     "sender domain (and its subdomains): rewrite (the default), refuse (550 5.7.1 at MAIL\n"
     "FROM) or pass (unchanged, e.g. a partner whose SPF includes you). A rule with --account\n"
     "applies to that account only. The most specific rule wins: the longest domain, then\n"
     "the account's own over a global one. Running servers apply changes within a second.\n"
     "encode prints the SRS form of an address as the server would write it now; decode\n"
     "prints the original of an SRS address, or why it is invalid or expired.\n"},
    {"limits",
     "usage: truefrom limits set LOGIN|DOMAIN|default KEY=VALUE... [--config FILE]\n"
     "       truefrom limits show LOGIN\n"
     "       truefrom limits reset LOGIN\n"
     "       truefrom limits list\n"
     "KEY is messages_per_hour, messages_per_day, recipients_per_message or\n"
     "recipients_per_day; VALUE a count (0 = no limit) or inherit (the next level decides).\n"
     "The most specific value wins, key by key: the account's, then its login's domain (and\n"
     "that domain's parents), then the database default, then [limits] in the config. Past a\n"
     "limit MAIL FROM (or RCPT TO) gets 451 4.7.1 naming the limit and when sending is\n"
     "possible again; a transaction that does not end in 250 gives its counts back. Running\n"
     "servers apply a change within a second. show prints the limits that apply to LOGIN,\n"
     "where each comes from, and the counts of the last hour and day (all nodes); reset\n"
     "clears the counts; list prints the config's values and every row.\n"
     "  truefrom limits set example.com messages_per_hour=50\n"
     "  truefrom limits set newsletter@example.com messages_per_day=0\n"},
    {"config",
     "usage: truefrom config check [--config FILE]\n"
     "Checks what `serve` needs before it is deployed: the config, the user it runs as,\n"
     "the TLS certificate and key (they load and match, validity and expiry, the host\n"
     "name), the SRS secrets, the database (reachable, schema version), every active DKIM\n"
     "key's file (as the server reads it) and each relay (a TCP connection and its 220).\n"
     "One line per finding with its fix; exit status 0 when there is no problem (warnings\n"
     "do not count), 1 otherwise.\n"},
    {"check",
     "usage: truefrom check LOGIN --mail-from ADDRESS [--message FILE] [--config FILE]\n"
     "Prints the verdict truefrom would give LOGIN for the envelope sender ADDRESS (\"<>\"\n"
     "for the null sender) and, with --message, for the message's From:, Sender: and\n"
     "Resent-* headers, naming the identity row or rule that decided each. Exit status 0\n"
     "when accepted, 1 when refused or on error.\n"},
};

}  // namespace

Args parse_args(const std::vector<std::string>& in) {
  Args a;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const std::string& s = in[i];
    if (s == "--help" || s == "-h") {
      a.help = true;
    } else if (s == "--version" || s == "-V") {
      a.version = true;
    } else if (s == "--config" || s == "-c") {
      if (i + 1 >= in.size()) {
        a.unknown_option = s + " needs a FILE";
      } else {
        a.config = in[++i];
      }
    } else if (s.rfind("--config=", 0) == 0) {
      a.config = s.substr(9);
    } else if (s == "--json") {
      a.json = true;
    } else if (s == "--password-stdin") {
      a.password_stdin = true;
    } else if (s == "--on-behalf") {
      a.on_behalf = true;
    } else if (auto* slot = s == "--forwarder"   ? &a.forwarder
                            : s == "--mail-from" ? &a.mail_from
                            : s == "--message"   ? &a.message
                            : s == "--selector"  ? &a.selector
                            : s == "--algorithm" ? &a.algorithm
                            : s == "--bits"      ? &a.bits
                            : s == "--account"   ? &a.account
                            : s == "--reason"    ? &a.reason
                                                 : nullptr) {
      if (i + 1 >= in.size()) {
        if (a.unknown_option.empty()) a.unknown_option = s + " needs a value";
      } else {
        *slot = in[++i];
      }
    } else if (s.size() > 1 && s[0] == '-') {
      if (a.unknown_option.empty()) a.unknown_option = "unknown option " + s;
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

int fail(const std::string& message) {
  std::cerr << "truefrom: error: " << message << "\n";
  return 1;
}

int usage_error(const std::string& message, const std::string& topic) {
  std::cerr << "truefrom: error: " << message << "\n\n";
  const auto h = kHelp.find(topic);
  std::cerr << (h != kHelp.end() ? h->second : std::string(kUsage));
  return 2;
}

std::string describe(const auth::StoreStatus& st) {
  if (st.code == auth::StoreErrc::kSchemaMissing) {
    return st.detail + "; run: truefrom db migrate --config FILE";
  }
  if (st.code == auth::StoreErrc::kUnavailable) {
    return st.detail + " (check [database] url and that PostgreSQL is running)";
  }
  return st.detail.empty() ? st.code.message() : st.detail;
}

Database::~Database() {
  store_.reset();
  if (embedded_) embedded_->release(keep_running_);
}

bool Database::open(std::string& error) {
  std::string conninfo;
  if (config_.database_url) {
    conninfo = *config_.database_url;
  } else {
    embedded_ =
        std::make_unique<EmbeddedPostgres>(config_.state_dir, embedded_cluster_user(config_));
    if (!embedded_->ensure_running(error)) return false;
    conninfo = embedded_->conninfo();
  }
  store_ = std::make_unique<auth::IdentityStore>(conninfo);
  return true;
}

std::optional<std::string> help_text(const std::string& command) {
  if (command.empty()) return std::string(kUsage);
  const auto h = kHelp.find(command);
  if (h == kHelp.end()) return std::nullopt;
  return h->second;
}

}  // namespace truefrom::app
