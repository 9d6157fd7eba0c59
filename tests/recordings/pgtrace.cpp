#include "tests/recordings/pgtrace.hpp"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <stdexcept>

namespace meridian::testing {
namespace {

constexpr std::int32_t protocol_3 = 196608;

std::int32_t be32(const std::string& s, std::size_t at) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return static_cast<std::int32_t>(v);
}

std::string from_hex(const std::string& hex, const std::string& where) {
  if (hex.size() % 2 != 0) throw std::runtime_error(where + ": odd number of hex digits");
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

// Whether a client packet is a whole typed message as the relay framed it.
bool frames_as_typed(const std::string& b) {
  return b.size() >= 5 && static_cast<std::size_t>(be32(b, 1)) + 1 == b.size();
}

}  // namespace

std::size_t query_phase_start(const conversation& c) {
  for (std::size_t i = 0; i < c.messages.size(); ++i)
    if (c.messages[i].from == side::server && c.messages[i].typed && c.messages[i].bytes[0] == 'Z') return i + 1;
  return c.messages.size();
}

trace read_trace(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot open " + file.string());
  trace t;
  t.name = file.parent_path().filename().string() + "/" + file.stem().string();
  std::string line;
  int line_no = 0;
  // The relay's own rule: the client is in its startup phase until a StartupMessage; the server
  // owes a one-byte answer after an SSLRequest or GSSENCRequest.
  bool client_untyped = true;
  bool server_owes_byte = false;
  while (std::getline(in, line)) {
    ++line_no;
    const auto where = file.string() + ":" + std::to_string(line_no);
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("=== connection ", 0) == 0) {
      t.conversations.push_back({std::stoi(line.substr(15)), {}});
      client_untyped = true;
      server_owes_byte = false;
      continue;
    }
    if (line.size() < 3 || (line[0] != '>' && line[0] != '<') || line[1] != ' ' || t.conversations.empty())
      throw std::runtime_error(where + ": not a message line");
    const auto end = line.find(' ', 2);
    trace_message m{static_cast<side>(line[0]), from_hex(line.substr(2, end == std::string::npos ? end : end - 2), where)};
    if (m.from == side::client) {
      if (client_untyped) {
        m.typed = false;
        if (m.bytes.size() >= 8 && static_cast<std::size_t>(be32(m.bytes, 0)) == m.bytes.size()) {
          const auto code = be32(m.bytes, 4);
          if (code == 80877103 || code == 80877104) server_owes_byte = true;
          if (code == protocol_3) client_untyped = false;
        }
      } else {
        m.typed = frames_as_typed(m.bytes);
      }
    } else if (server_owes_byte) {
      m.typed = false;
      server_owes_byte = false;
    } else {
      m.typed = frames_as_typed(m.bytes);
    }
    t.conversations.back().messages.push_back(std::move(m));
  }
  return t;
}

std::vector<trace> read_all_traces(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".pgtrace") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::vector<trace> out;
  out.reserve(files.size());
  for (const auto& f : files) out.push_back(read_trace(f));
  return out;
}

}  // namespace meridian::testing
