// Helpers for the signer tests: temporary key files, a message splitter and a verifier
// built on libopendkim's own verification (keys published through its file query method).
#pragma once

#include <sys/stat.h>
#include <unistd.h>
#include "tests/unit/signer/opendkim.hpp"

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "signer/dkim/dkim_key.hpp"
#include "signer/dkim/dkim_signer.hpp"

namespace truefrom::signer::test {

/// A temporary directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "truefrom-dkim-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::filesystem::path& p, std::string_view data, mode_t mode) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << data;
  ::chmod(p.c_str(), mode);
}

/// A key generated and written to `dir`, with its record.
inline SigningKey make_key(const std::filesystem::path& dir, std::string domain,
                           std::string selector, Algorithm a) {
  std::string error;
  const auto g = generate_key(a, 2048, error);
  KeyRecord r;
  r.domain = std::move(domain);
  r.selector = std::move(selector);
  r.algorithm = a;
  r.path = (dir / (r.domain + "." + r.selector + ".pem")).string();
  r.public_key = g ? g->public_key : "";
  write_file(r.path, g ? g->pem : "", 0600);
  return load_signing_key(r, ::geteuid());
}

/// Splits a CRLF message into header fields (without their final CRLF) and body.
inline MessageView split(std::string_view m) {
  MessageView v;
  std::size_t pos = 0;
  while (pos < m.size()) {
    if (m.substr(pos, 2) == "\r\n") {
      v.body = m.substr(pos + 2);
      return v;
    }
    std::size_t end = pos;
    for (;;) {
      end = m.find("\r\n", end);
      if (end == std::string_view::npos) {
        end = m.size();
        break;
      }
      if (end + 2 < m.size() && (m[end + 2] == ' ' || m[end + 2] == '\t')) {
        end += 2;
        continue;
      }
      break;
    }
    v.headers.push_back(m.substr(pos, end - pos));
    pos = end + 2;
  }
  return v;
}

/// Verification verdicts of every signature in `message`, by libopendkim, with the keys of
/// `keys` published through a key file.
struct Verdict {
  bool pass = false;
  std::string detail;
};

inline std::vector<Verdict> verify(const std::string& message, const std::vector<KeyRecord>& keys,
                                   const std::filesystem::path& dir) {
  const auto table = dir / "keys.txt";
  {
    std::ofstream t(table);
    for (const auto& k : keys) {
      t << k.selector << "._domainkey." << k.domain << " "
        << dns_record_text(k.algorithm, k.public_key) << "\n";
    }
  }
  std::vector<Verdict> out;
  DKIM_LIB* lib = dkim_init(nullptr, nullptr);
  int method = DKIM_QUERY_FILE;
  dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &method, sizeof method);
  std::string info = table.string();
  dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, info.data(), info.size());
  DKIM_STAT st;
  DKIM* v = dkim_verify(lib, reinterpret_cast<const unsigned char*>("test"), nullptr, &st);
  const MessageView mv = split(message);
  for (auto h : mv.headers) {
    dkim_header(v, reinterpret_cast<unsigned char*>(const_cast<char*>(h.data())), h.size());
  }
  dkim_eoh(v);
  if (!mv.body.empty()) {
    dkim_body(v, reinterpret_cast<unsigned char*>(const_cast<char*>(mv.body.data())),
              mv.body.size());
  }
  st = dkim_eom(v, nullptr);
  DKIM_SIGINFO** sigs = nullptr;
  int n = 0;
  if (dkim_getsiglist(v, &sigs, &n) == DKIM_STAT_OK) {
    for (int i = 0; i < n; ++i) {
      Verdict d;
      d.pass = DKIM_SIG_CHECK(sigs[i]);
      auto text = [](const void* s) {
        return s ? std::string(static_cast<const char*>(s)) : std::string("(none)");
      };
      d.detail = text(dkim_sig_getdomain(sigs[i])) + ": " +
                 text(dkim_sig_geterrorstr(dkim_sig_geterror(sigs[i]))) + " (eom " +
                 text(dkim_getresultstr(st)) + ", bh " + std::to_string(dkim_sig_getbh(sigs[i])) +
                 ")";
      out.push_back(d);
    }
  }
  dkim_free(v);
  dkim_close(lib);
  return out;
}

/// The DKIM-Signature fields `signer` makes for `message` with `keys`, prepended to it.
inline std::string signed_message(const DkimSigner& signer,
                                  const std::vector<const SigningKey*>& keys,
                                  const std::string& message, std::string* error = nullptr) {
  const SignResult r = signer.sign(keys, split(message));
  if (error) *error = r.error;
  std::string out;
  for (const auto& f : r.fields) out += f;
  return out + message;
}

}  // namespace truefrom::signer::test
