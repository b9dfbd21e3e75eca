#include "contrib/bench/json_object.hpp"

#include <cmath>
#include <cstdio>

namespace truefrom::bench {

std::string json_quote(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

void JsonObject::key(std::string_view name) {
  if (!body_.empty()) body_ += ",";
  body_ += json_quote(name);
  body_ += ":";
}

JsonObject& JsonObject::add_int(std::string_view name, std::int64_t value) {
  key(name);
  body_ += std::to_string(value);
  return *this;
}

JsonObject& JsonObject::add_number(std::string_view name, double value) {
  key(name);
  if (!std::isfinite(value)) {
    body_ += "null";
    return *this;
  }
  char text[64];
  std::snprintf(text, sizeof text, "%.3f", value);
  body_ += text;
  return *this;
}

JsonObject& JsonObject::add_string(std::string_view name, std::string_view value) {
  key(name);
  body_ += json_quote(value);
  return *this;
}

JsonObject& JsonObject::add_optional_string(std::string_view name,
                                            const std::optional<std::string>& value) {
  if (!value) return add_null(name);
  return add_string(name, std::string_view(*value));
}

JsonObject& JsonObject::add_bool(std::string_view name, bool value) {
  key(name);
  body_ += value ? "true" : "false";
  return *this;
}

JsonObject& JsonObject::add_null(std::string_view name) {
  key(name);
  body_ += "null";
  return *this;
}

JsonObject& JsonObject::add_object(std::string_view name, const JsonObject& value) {
  key(name);
  body_ += value.str();
  return *this;
}

}  // namespace truefrom::bench
