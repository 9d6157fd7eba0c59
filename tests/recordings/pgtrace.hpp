#pragma once
// Reads the .pgtrace recordings of this directory (format: pgtrace.py): conversations between a
// real driver and PostgreSQL, message by message, in the order a proxy between them saw them.
#include <filesystem>
#include <string>
#include <vector>

namespace meridian::testing {

enum class side : char { client = '>', server = '<' };

struct trace_message {
  side from;
  std::string bytes;   // the whole message as sent (type byte and length included)
  bool typed = true;   // false: a startup-phase packet, the one-byte SSL answer, or bytes that
                       // do not frame as a message (the last of that side)
};

struct conversation {
  int number = 0;
  std::vector<trace_message> messages;
};

struct trace {
  std::string name;  // <driver>/<flow>
  std::vector<conversation> conversations;
};

// Where the query phase begins: the index after the server's first ReadyForQuery (the end of
// start-up and authentication); messages.size() when the conversation never got there.
[[nodiscard]] std::size_t query_phase_start(const conversation& c);

// Throws std::runtime_error on a line that is not part of the format.
[[nodiscard]] trace read_trace(const std::filesystem::path& file);

// Every recording under `dir`, sorted by name.
[[nodiscard]] std::vector<trace> read_all_traces(const std::filesystem::path& dir);

}  // namespace meridian::testing
