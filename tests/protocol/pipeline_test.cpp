// Scripted request/response sequences: which answers are forwarded, when a connection is idle,
// and what an error discards.
#include <catch2/catch.hpp>

#include <filesystem>

#include "protocol/pipeline.hpp"
#include "tests/recordings/pgtrace.hpp"

using namespace meridian::protocol;

namespace {
// Feeds backend message types; returns the forwarded ones as a string.
std::string feed(pipeline& p, std::string_view types) {
  std::string forwarded;
  for (char t : types) {
    auto v = p.received(t);
    REQUIRE_FALSE(v.unexpected);
    if (v.forward) forwarded.push_back(t);
  }
  return forwarded;
}
void send(pipeline& p, std::string_view types) {
  for (char t : types) p.sent(t);
}
}  // namespace

TEST_CASE("simple query cycle", "[protocol][pipeline]") {
  pipeline p;
  CHECK(p.empty());
  send(p, "Q");
  CHECK_FALSE(p.empty());
  CHECK(p.outstanding_syncs() == 1);
  CHECK(feed(p, "TDDCZ") == "TDDCZ");
  CHECK(p.empty());
}

TEST_CASE("multi-statement simple query with an error", "[protocol][pipeline]") {
  pipeline p;
  send(p, "Q");
  CHECK(feed(p, "CTDCEZ") == "CTDCEZ");
  CHECK(p.empty());
}

TEST_CASE("extended batch", "[protocol][pipeline]") {
  pipeline p;
  send(p, "PBDES");
  CHECK(feed(p, "12TDDC") == "12TDDC");
  CHECK_FALSE(p.empty());
  CHECK(feed(p, "Z") == "Z");
  CHECK(p.empty());
}

TEST_CASE("describe statement yields parameter description then row description", "[protocol][pipeline]") {
  pipeline p;
  p.sent('P');
  p.sent('D', 'S');
  p.sent('S');
  CHECK(feed(p, "1tnZ") == "1tnZ");
  CHECK(p.empty());
}

TEST_CASE("injected Parse answers are swallowed", "[protocol][pipeline]") {
  pipeline p;
  p.sent(pending_request{request_kind::parse, true});  // Meridian's own Parse
  send(p, "BES");
  CHECK(feed(p, "12DCZ") == "2DCZ");
  CHECK(p.empty());
}

TEST_CASE("local requests are answered in turn", "[protocol][pipeline]") {
  pipeline p;
  p.sent('Q');
  p.sent(pending_request{request_kind::parse, false, true});  // answered by Meridian
  p.sent('S');
  CHECK_FALSE(p.take_local());  // the query is still ahead of it
  CHECK(feed(p, "CZ") == "CZ");
  auto local = p.take_local();
  REQUIRE(local);
  CHECK(local->kind == request_kind::parse);
  CHECK(feed(p, "Z") == "Z");
  CHECK(p.empty());
}

TEST_CASE("an extended-protocol error discards everything up to Sync", "[protocol][pipeline]") {
  pipeline p;
  p.sent(pending_request{request_kind::parse, true, false, 0, 7});
  send(p, "BES");
  auto v = p.received('E');
  CHECK(v.forward);  // the client learns why its Bind never ran
  CHECK(v.synthetic_error);
  REQUIRE(p.discarded().size() == 3);
  CHECK(p.discarded()[0].tag == 7);
  CHECK(p.discarded()[1].kind == request_kind::bind);
  CHECK(p.discarded()[2].kind == request_kind::execute);
  CHECK(feed(p, "Z") == "Z");
  CHECK(p.empty());
}

TEST_CASE("an error before the Sync arrives makes the pipeline discard until Sync", "[protocol][pipeline]") {
  pipeline p;
  send(p, "PB");  // client flushed without Sync
  CHECK(feed(p, "E") == "E");
  CHECK(p.discarding());
  CHECK_FALSE(p.empty());
  p.sent('E');  // still ignored by the server
  CHECK(p.discarded().size() == 3);  // Parse and Bind at the error, then the Execute
  p.sent('S');
  CHECK_FALSE(p.discarding());
  CHECK(feed(p, "Z") == "Z");
  CHECK(p.empty());
}

TEST_CASE("asynchronous messages belong to no request", "[protocol][pipeline]") {
  pipeline p;
  CHECK(feed(p, "SNA") == "SNA");
  CHECK(p.empty());
  auto v = p.received('E');
  CHECK(v.unsolicited);
}

TEST_CASE("responses no request explains are flagged", "[protocol][pipeline]") {
  pipeline p;
  CHECK(p.received('Z').unexpected);
  CHECK(p.received('1').unexpected);
  pipeline q;
  q.sent('B');
  CHECK(q.received('1').unexpected);
}

TEST_CASE("COPY inside a simple query", "[protocol][pipeline]") {
  pipeline p;
  send(p, "Q");
  p.sent('d');
  p.sent('c');
  CHECK(feed(p, "GCZ") == "GCZ");
  CHECK(p.empty());
}

TEST_CASE("extended COPY: the Sync sent before the copy began is ignored", "[protocol][pipeline]") {
  // libpq's PQexecParams("COPY … FROM STDIN"): Parse/Bind/Describe/Execute/Sync, then the data.
  pipeline p;
  send(p, "PBDES");
  CHECK(feed(p, "12nG") == "12nG");
  CHECK(p.copying_in());
  send(p, "dcS");
  CHECK_FALSE(p.copying_in());
  CHECK(feed(p, "CZ") == "CZ");
  CHECK(p.empty());
}

TEST_CASE("extended COPY with its data sent before the server answered", "[protocol][pipeline]") {
  pipeline p;
  send(p, "PBDESdcS");
  CHECK(feed(p, "12nGCZ") == "12nGCZ");
  CHECK(p.empty());
}

TEST_CASE("a Sync or Flush inside a copy-in is ignored", "[protocol][pipeline]") {
  pipeline p;
  send(p, "Q");
  CHECK(feed(p, "G") == "G");
  send(p, "dSHdc");
  CHECK(feed(p, "CZ") == "CZ");
  CHECK(p.empty());
}

TEST_CASE("an error ends a copy-in: then the server skips to the next Sync", "[protocol][pipeline]") {
  pipeline p;
  send(p, "PBDES");
  CHECK(feed(p, "12nG") == "12nG");
  p.sent('d');
  CHECK(feed(p, "E") == "E");
  CHECK(p.discarding());
  send(p, "dcS");
  CHECK(feed(p, "Z") == "Z");
  CHECK(p.empty());
}

TEST_CASE("a COPY that never started leaves no copy to end", "[protocol][pipeline]") {
  pipeline p;
  send(p, "Qdc");
  CHECK(feed(p, "EZ") == "EZ");
  CHECK(p.empty());
  send(p, "Q");
  CHECK(feed(p, "CZ") == "CZ");
  CHECK(p.empty());
}

TEST_CASE("every recorded conversation: each answer has its request, none is left over", "[protocol][pipeline]") {
  using meridian::testing::side;
  const auto dir = std::filesystem::path(MERIDIAN_TEST_DATA_DIR) / "recordings";
  int conversations = 0;
  for (const auto& t : meridian::testing::read_all_traces(dir)) {
    for (const auto& c : t.conversations) {
      pipeline p;
      bool fatal = false;
      std::size_t syncs = 0, ready = 0;
      for (auto i = meridian::testing::query_phase_start(c); i < c.messages.size(); ++i) {
        const auto& m = c.messages[i];
        if (!m.typed) continue;
        INFO(t.name << " connection " << c.number << " message " << i);
        const char type = m.bytes[0];
        if (m.from == side::client) {
          if (type == 'S' || type == 'Q') ++syncs;
          p.sent(type, type == 'D' ? m.bytes[5] : 'S');
          continue;
        }
        const auto v = p.received(type);
        CHECK_FALSE(v.unexpected);
        if (v.ready) ++ready;
        if (type == 'E' && m.bytes.find(std::string("SFATAL\0", 7)) != std::string::npos) fatal = true;
      }
      INFO(t.name << " connection " << c.number);
      if (fatal) continue;  // the server went away with its request unanswered
      ++conversations;
      CHECK(p.empty());
      // What the server ignored (a Sync inside a copy-in) is all that went unanswered.
      CHECK(ready <= syncs);
    }
  }
  CHECK(conversations > 30);
}

TEST_CASE("a client unit's end carries what the unit does, past a copy", "[protocol][pipeline]") {
  pipeline p;
  // Parse/Bind/Execute of a write, then its Sync; a read Query; Meridian's own query between.
  p.note_effect(1);
  p.sent('P');
  p.note_effect(1);
  p.sent('B');
  p.sent('E');
  p.sent('S');
  p.sent(pending_request{request_kind::query, true});  // Meridian's own: takes nothing
  p.sent('Q');
  std::vector<std::uint8_t> ends;
  for (auto* r = p.unanswered_begin(); r != p.unanswered_end(); ++r)
    if (r->kind == request_kind::sync || r->kind == request_kind::query) ends.push_back(r->effect);
  CHECK(ends == std::vector<std::uint8_t>{1, 0, 0});
  CHECK(p.open_effect() == 0);
  // A COPY FROM STDIN through the extended protocol: the Sync sent before the copy began is
  // not answered; its unit ends at the Sync after CopyDone, which carries the effect.
  pipeline c;
  c.note_effect(1);
  send(c, "PBES");
  CHECK(feed(c, "12G") == "12G");
  CHECK(c.open_effect() == 1);
  send(c, "c");
  c.sent('S');
  REQUIRE(c.unanswered_end() - c.unanswered_begin() == 2);  // the Execute, then the Sync
  CHECK((c.unanswered_end() - 1)->effect == 1);
  CHECK(c.open_effect() == 0);
}
