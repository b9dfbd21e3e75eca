#include "auth/sasl_server.hpp"

#include <pthread.h>
#include <sasl/sasl.h>
#include <sasl/saslplug.h>

#include <cstring>
#include <mutex>

#ifndef TRUEFROM_SASL_PLUGIN_DIR
#define TRUEFROM_SASL_PLUGIN_DIR "/usr/lib/x86_64-linux-gnu/sasl2"
#endif

namespace truefrom::auth {
namespace {

std::string g_mechanisms;  // written once in init, read-only afterwards

// --- mutexes: libsasl2's defaults do nothing; give it real ones (before sasl_server_init).
void* mutex_alloc() {
  auto* m = new pthread_mutex_t;
  pthread_mutex_init(m, nullptr);
  return m;
}
int mutex_lock(void* m) {
  return pthread_mutex_lock(static_cast<pthread_mutex_t*>(m)) == 0 ? SASL_OK : SASL_FAIL;
}
int mutex_unlock(void* m) {
  return pthread_mutex_unlock(static_cast<pthread_mutex_t*>(m)) == 0 ? SASL_OK : SASL_FAIL;
}
void mutex_free(void* m) {
  auto* p = static_cast<pthread_mutex_t*>(m);
  pthread_mutex_destroy(p);
  delete p;
}

// --- global callbacks
int on_getopt(void*, const char* plugin_name, const char* option, const char** result,
              unsigned* len) {
  if (plugin_name != nullptr || option == nullptr) return SASL_FAIL;
  const char* value = nullptr;
  if (std::strcmp(option, "mech_list") == 0) {
    value = g_mechanisms.c_str();
  } else if (std::strcmp(option, "pwcheck_method") == 0) {
    // No such verifier exists, so when our check says no, Cyrus has nothing to fall back to.
    value = "truefrom-checkpass-only";
  } else if (std::strcmp(option, "auxprop_plugin") == 0) {
    value = "none";
  }
  if (value == nullptr) return SASL_FAIL;
  *result = value;
  if (len != nullptr) *len = static_cast<unsigned>(std::strlen(value));
  return SASL_OK;
}

int on_getpath(void*, const char** path) {
  *path = TRUEFROM_SASL_PLUGIN_DIR;
  return SASL_OK;
}

bool ends_with(const char* s, const char* suffix) {
  const std::size_t n = std::strlen(s);
  const std::size_t m = std::strlen(suffix);
  return n >= m && std::strcmp(s + n - m, suffix) == 0;
}

int on_verifyfile(void*, const char* file, sasl_verify_type_t type) {
  // Only the PLAIN and LOGIN mechanism plugins; no config file, no sasldb, no other plugin.
  if (type != SASL_VRFY_PLUGIN || file == nullptr) return SASL_CONTINUE;
  if (ends_with(file, "/libplain.so") || ends_with(file, "/liblogin.so")) return SASL_OK;
  return SASL_CONTINUE;
}

int on_log(void*, int, const char*) {
  // Cyrus logs its view (e.g. "unknown password verifier"), which is expected here by
  // design; truefrom logs the real outcome of each AUTH itself.
  return SASL_OK;
}

using Cb = int (*)();
// sasl_callback_t holds every callback as int(*)(void); casting through void(*)(void) is the
// documented way to store the real signatures.
template <class F>
Cb as_callback(F* f) {
  return reinterpret_cast<Cb>(reinterpret_cast<void (*)()>(f));
}

sasl_callback_t g_callbacks[] = {
    {SASL_CB_GETOPT, as_callback(&on_getopt), nullptr},
    {SASL_CB_GETPATH, as_callback(&on_getpath), nullptr},
    {SASL_CB_VERIFYFILE, as_callback(&on_verifyfile), nullptr},
    {SASL_CB_LOG, as_callback(&on_log), nullptr},
    {SASL_CB_LIST_END, nullptr, nullptr},
};

}  // namespace

std::string SaslLibrary::init(const std::string& mechanisms) {
  static std::once_flag once;
  static std::string error;
  std::call_once(once, [&] {
    g_mechanisms = mechanisms;
    sasl_set_mutex(&mutex_alloc, &mutex_lock, &mutex_unlock, &mutex_free);
    // appname NULL: no <app>.conf is looked for anywhere.
    const int rc = sasl_server_init(g_callbacks, nullptr);
    if (rc != SASL_OK) {
      error = std::string("sasl_server_init failed: ") + sasl_errstring(rc, nullptr, nullptr);
    }
  });
  return error;
}

struct SaslExchange::Impl {
  CredentialCheck check;
  std::string hostname;
  sasl_conn_t* conn = nullptr;
  sasl_callback_t callbacks[3];
  std::optional<CredentialVerdict> verdict;  // set by the last checkpass call
  std::string attempted;                     // the login the client gave, as typed
  std::string error;

  static int on_checkpass(sasl_conn_t*, void* context, const char* user, const char* pass,
                          unsigned passlen, struct propctx*) {
    auto* self = static_cast<Impl*>(context);
    self->attempted = user == nullptr ? std::string{} : std::string(user);
    self->verdict = self->check(user == nullptr ? std::string{} : std::string(user),
                                std::string_view(pass == nullptr ? "" : pass, passlen));
    return self->verdict->kind == CredentialVerdict::Kind::kAccepted ? SASL_OK : SASL_BADAUTH;
  }

  // RFC 4954 / RFC 4616: an authorization identity other than the authenticated one is
  // refused; truefrom has no proxy authorization.
  static int on_authorize(sasl_conn_t*, void*, const char* requested, unsigned rlen,
                          const char* authenticated, unsigned alen, const char*, unsigned,
                          struct propctx*) {
    if (rlen == 0) return SASL_OK;
    if (rlen == alen && std::memcmp(requested, authenticated, rlen) == 0) return SASL_OK;
    return SASL_NOAUTHZ;
  }

  AuthOutcome finish(int rc, const char* out, unsigned outlen) {
    AuthOutcome o;
    o.attempted_login = attempted;
    if (rc == SASL_CONTINUE) {
      o.kind = AuthOutcome::Kind::kChallenge;
      o.challenge.assign(out == nullptr ? "" : out, outlen);
      return o;
    }
    if (rc == SASL_OK && verdict && verdict->kind == CredentialVerdict::Kind::kAccepted &&
        verdict->account) {
      // The authorized identity must be the account that was checked.
      const void* name = nullptr;
      if (sasl_getprop(conn, SASL_USERNAME, &name) != SASL_OK || name == nullptr) {
        o.kind = AuthOutcome::Kind::kRejected;
        o.detail = "SASL did not report the authenticated user";
        return o;
      }
      o.kind = AuthOutcome::Kind::kSuccess;
      o.account = std::move(verdict->account);
      return o;
    }
    if (verdict && verdict->kind == CredentialVerdict::Kind::kUnavailable) {
      o.kind = AuthOutcome::Kind::kUnavailable;
      o.detail = verdict->detail;
      return o;
    }
    if (!verdict && (rc == SASL_BADPROT || rc == SASL_BADPARAM)) {
      o.kind = AuthOutcome::Kind::kProtocolError;
      o.detail = sasl_errdetail(conn);
      return o;
    }
    o.kind = AuthOutcome::Kind::kRejected;
    o.detail = verdict ? (verdict->kind == CredentialVerdict::Kind::kAccepted
                              ? "authorization identity refused"
                              : verdict->detail)
                       : std::string(sasl_errdetail(conn));
    return o;
  }
};

SaslExchange::SaslExchange(CredentialCheck check, std::string hostname, unsigned external_ssf)
    : impl_(std::make_unique<Impl>()) {
  impl_->check = std::move(check);
  impl_->hostname = std::move(hostname);
  impl_->callbacks[0] = {SASL_CB_SERVER_USERDB_CHECKPASS, as_callback(&Impl::on_checkpass),
                         impl_.get()};
  impl_->callbacks[1] = {SASL_CB_PROXY_POLICY, as_callback(&Impl::on_authorize), impl_.get()};
  impl_->callbacks[2] = {SASL_CB_LIST_END, nullptr, nullptr};
  int rc = sasl_server_new("smtp", impl_->hostname.c_str(), nullptr, nullptr, nullptr,
                           impl_->callbacks, 0, &impl_->conn);
  if (rc != SASL_OK) {
    impl_->error = std::string("sasl_server_new: ") + sasl_errstring(rc, nullptr, nullptr);
    impl_->conn = nullptr;
    return;
  }
  sasl_ssf_t ssf = external_ssf;
  sasl_setprop(impl_->conn, SASL_SSF_EXTERNAL, &ssf);
  sasl_security_properties_t props{};
  // Plaintext mechanisms only when the external layer (TLS) protects them.
  props.security_flags = SASL_SEC_NOPLAINTEXT | SASL_SEC_NOANONYMOUS;
  sasl_setprop(impl_->conn, SASL_SEC_PROPS, &props);
}

SaslExchange::~SaslExchange() {
  if (impl_->conn != nullptr) sasl_dispose(&impl_->conn);
}

AuthOutcome SaslExchange::start(const std::string& mechanism,
                                const std::optional<std::string>& initial) {
  if (impl_->conn == nullptr) {
    return {AuthOutcome::Kind::kUnavailable, {}, nullptr, impl_->error, {}};
  }
  impl_->verdict.reset();
  const char* out = nullptr;
  unsigned outlen = 0;
  const int rc =
      sasl_server_start(impl_->conn, mechanism.c_str(), initial ? initial->data() : nullptr,
                        initial ? static_cast<unsigned>(initial->size()) : 0, &out, &outlen);
  return impl_->finish(rc, out, outlen);
}

AuthOutcome SaslExchange::step(const std::string& response) {
  if (impl_->conn == nullptr) {
    return {AuthOutcome::Kind::kUnavailable, {}, nullptr, impl_->error, {}};
  }
  const char* out = nullptr;
  unsigned outlen = 0;
  const int rc = sasl_server_step(impl_->conn, response.data(),
                                  static_cast<unsigned>(response.size()), &out, &outlen);
  return impl_->finish(rc, out, outlen);
}

}  // namespace truefrom::auth
