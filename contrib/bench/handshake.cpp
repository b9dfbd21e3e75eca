// truefrom-handshake: what OpenSSL's own TLS handshake costs the server, without sockets.
//
// A client and a server context (the server configured as truefrom's listeners are,
// submission/net/tls_options.hpp, with the given certificate and key) make N full handshakes
// over an in-memory BIO pair in one thread; only the server's SSL_do_handshake() calls are
// timed (CLOCK_THREAD_CPUTIME_ID). No session is resumed. The result, set against `openssl
// speed`'s figures for the same primitives (the certificate key's signature and two X25519
// operations), tells how much of a connection's handshake cost is OpenSSL's protocol work
// rather than cryptography or the server's I/O. Prints one JSON line.
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "contrib/bench/json_object.hpp"
#include "submission/net/tls_options.hpp"

namespace {

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

[[noreturn]] void fail(const std::string& what) {
  char text[256];
  ERR_error_string_n(ERR_get_error(), text, sizeof text);
  std::fprintf(stderr, "truefrom-handshake: %s: %s\n", what.c_str(), text);
  std::exit(1);
}

void usage() {
  std::fprintf(stderr,
               "usage: truefrom-handshake --cert PEM --key PEM [--count N]\n"
               "  N full TLS handshakes (default 2000) between a client and a server\n"
               "  configured as truefrom's listeners, in memory; prints the server's CPU\n"
               "  time per handshake as one JSON line.\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string cert, key;
  long count = 2000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--cert" || a == "--key" || a == "--count") && i + 1 < argc) {
      const std::string v = argv[++i];
      if (a == "--cert") cert = v;
      if (a == "--key") key = v;
      if (a == "--count") count = std::strtol(v.c_str(), nullptr, 10);
    } else {
      usage();
      return a == "--help" ? 0 : 2;
    }
  }
  if (cert.empty() || key.empty() || count <= 0) {
    usage();
    return 2;
  }
  SSL_CTX* server = SSL_CTX_new(TLS_server_method());
  if (!server) fail("cannot create the server context");
  truefrom::net::configure_server_tls(server);
  if (SSL_CTX_use_certificate_chain_file(server, cert.c_str()) != 1) fail("cannot load " + cert);
  if (SSL_CTX_use_PrivateKey_file(server, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    fail("cannot load " + key);
  }
  SSL_CTX* client = SSL_CTX_new(TLS_client_method());
  if (!client) fail("cannot create the client context");

  double server_seconds = 0;
  std::string version, cipher;
  for (long n = 0; n < count; ++n) {
    SSL* c = SSL_new(client);
    SSL* s = SSL_new(server);
    BIO* client_end = nullptr;
    BIO* server_end = nullptr;
    if (!c || !s || BIO_new_bio_pair(&client_end, 0, &server_end, 0) != 1) fail("out of memory");
    SSL_set_bio(c, client_end, client_end);
    SSL_set_bio(s, server_end, server_end);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    bool done = false;
    for (int round = 0; round < 8 && !done; ++round) {
      SSL_do_handshake(c);
      const double t0 = thread_cpu_seconds();
      const int r = SSL_do_handshake(s);
      server_seconds += thread_cpu_seconds() - t0;
      done = r == 1 && SSL_is_init_finished(c);
    }
    if (!done) fail("handshake " + std::to_string(n) + " did not finish");
    if (n == 0) {
      version = SSL_get_version(s);
      cipher = SSL_get_cipher_name(s);
    }
    SSL_free(c);
    SSL_free(s);
  }
  truefrom::bench::JsonObject out;
  out.add_int("handshakes", count);
  out.add_string("protocol", version);
  out.add_string("cipher", cipher);
  out.add_number("server_cpu_ms_per_handshake", server_seconds * 1000 / static_cast<double>(count));
  std::printf("%s\n", out.str().c_str());
  SSL_CTX_free(client);
  SSL_CTX_free(server);
  return 0;
}
