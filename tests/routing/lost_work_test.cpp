// What a client is told of its work when its server connection is lost (routing/lost_work.hpp).
#include <catch2/catch.hpp>

#include "routing/lost_work.hpp"

using namespace meridian;
using routing::lost_answer;
using protocol::tx_status;
namespace ue = routing::unit_effect;

namespace {

struct row {
  const char* what;
  tx_status before;
  std::uint8_t effect;
  bool in_flight;
  bool simple;
  lost_answer answer;
  tx_status after;
};

}  // namespace

TEST_CASE("lost work: each unit gets the answer the loss makes true", "[routing][lost_work]") {
  constexpr auto I = tx_status::idle;
  constexpr auto T = tx_status::in_transaction;
  constexpr auto E = tx_status::failed;
  constexpr std::uint8_t commit = ue::commits | ue::ends;
  const row rows[] = {
      // Outside a block, in flight: a write's or commit's outcome is unknown; a read left nothing.
      {"autocommit INSERT", I, ue::writes, true, true, lost_answer::unknown_outcome, I},
      {"autocommit INSERT, extended", I, ue::writes, true, false, lost_answer::unknown_outcome, I},
      {"autocommit SELECT", I, 0, true, true, lost_answer::rolled_back, I},
      {"BEGIN; INSERT in one Query", I, ue::begins | ue::writes, true, true, lost_answer::rolled_back, E},
      {"BEGIN; INSERT; COMMIT in one Query", I, ue::begins | ue::writes | commit, true, true,
       lost_answer::unknown_outcome, I},
      // In an open block the client does not know is lost.
      {"INSERT in a block", T, ue::writes, true, true, lost_answer::rolled_back, E},
      {"SELECT in a block, extended", T, 0, true, false, lost_answer::rolled_back, E},
      {"COMMIT in flight", T, commit, true, true, lost_answer::unknown_outcome, I},
      {"COMMIT in flight, extended", T, commit, true, false, lost_answer::unknown_outcome, I},
      {"COMMIT after the loss", T, commit, false, true, lost_answer::rolled_back, I},
      {"ROLLBACK in flight", T, ue::ends, true, true, lost_answer::rollback_done, I},
      {"ROLLBACK in flight, extended", T, ue::ends, true, false, lost_answer::rolled_back, I},
      {"ROLLBACK after the loss, extended", T, ue::ends, false, false, lost_answer::rollback_done, I},
      {"SELECT after the loss", T, 0, false, true, lost_answer::rolled_back, E},
      // In a failed block, what PostgreSQL answers.
      {"SELECT in a failed block", E, 0, false, true, lost_answer::aborted, E},
      {"INSERT in a failed block, extended", E, ue::writes, true, false, lost_answer::aborted, E},
      {"ROLLBACK of a failed block", E, ue::ends, false, true, lost_answer::rollback_done, I},
      {"COMMIT of a failed block", E, commit, false, true, lost_answer::rollback_done, I},
      {"COMMIT of a failed block, extended", E, commit, false, false, lost_answer::rollback_done, I},
      // After the loss, outside a block: nothing to say, the unit runs.
      {"INSERT after the loss", I, ue::writes, false, true, lost_answer::run, I},
      {"SELECT after the loss, outside a block", I, 0, false, false, lost_answer::run, I},
  };
  for (const auto& r : rows) {
    INFO(r.what);
    const auto o = routing::answer_lost_unit(r.before, r.effect, r.in_flight, r.simple);
    CHECK(o.answer == r.answer);
    CHECK(o.after == r.after);
  }
}
