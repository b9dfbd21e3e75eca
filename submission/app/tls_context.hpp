// The listeners' TLS context, built from the config: truefrom's policy
// (net/tls_options.hpp), the [tls] overrides, the certificate chain and its key. Used by
// `serve` and by `config check`.
// Thread-safety: a plain function; the context is shared only once built.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "submission/app/config.hpp"

namespace truefrom::app {

/// On failure returns null with a message naming the [tls] key and the fix.
std::unique_ptr<boost::asio::ssl::context> make_tls_context(const Config& c, std::string& error);

}  // namespace truefrom::app
