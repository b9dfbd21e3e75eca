// Prints, as JSON lines, how truefrom's parser reads the address fields of every case in the
// sender-binding corpus (tests/golden/header_binding.txt), for the differential test against
// Python's email.headerregistry (tests/integration/test_address_differential.py).
// usage: address_probe CORPUS
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "submission/core/address_list.hpp"
#include "submission/core/header_fields.hpp"
#include "submission/core/header_text.hpp"

namespace {

using namespace truefrom::smtp;

std::string json(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

bool address_field(const std::string& name) {
  return field_name_is(name, "From") || field_name_is(name, "Sender") ||
         field_name_is(name, "Resent-From") || field_name_is(name, "Resent-Sender");
}

void probe(const std::string& name, const std::vector<std::string>& lines) {
  std::string message;
  for (const auto& l : lines) message += l + "\r\n";
  message += "\r\n";
  const auto section = parse_header_section(message);
  if (!section) return;
  int index = 0;
  for (const auto& f : section->fields) {
    if (!address_field(f.name)) continue;
    std::cout << "{\"case\":" << json(name) << ",\"index\":" << index++
              << ",\"field\":" << json(f.name);
    if (!valid_utf8(f.value)) {
      std::cout << ",\"skip\":\"not UTF-8\"}\n";
      continue;
    }
    std::cout << ",\"value\":" << json(f.value);
    std::string error;
    const auto list = parse_address_list(f.value, &error);
    if (!list) {
      std::cout << ",\"ok\":false,\"error\":" << json(error) << "}\n";
      continue;
    }
    std::cout << ",\"ok\":true,\"mailboxes\":[";
    for (std::size_t i = 0; i < list->mailboxes.size(); ++i) {
      const auto& m = list->mailboxes[i];
      std::cout << (i ? "," : "") << "[" << json(m.address.local) << "," << json(m.address.domain)
                << "," << json(m.display_name) << "]";
    }
    std::cout << "]}\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: address_probe CORPUS\n";
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  if (!in) {
    std::cerr << "address_probe: cannot read " << argv[1] << "\n";
    return 1;
  }
  std::string line;
  std::string name;
  std::vector<std::string> lines;
  bool in_case = false;
  while (std::getline(in, line)) {
    if (line.rfind("### ", 0) == 0) {
      name = line.substr(4);
      lines.clear();
      in_case = true;
    } else if (!in_case || line.empty() || line.rfind("% ", 0) == 0) {
      continue;
    } else if (line.rfind("=> ", 0) == 0) {
      probe(name, lines);
      in_case = false;
    } else {
      lines.push_back(line);
    }
  }
  return 0;
}
