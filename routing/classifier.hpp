#pragma once
// What a statement needs, decided with PostgreSQL's own grammar (libpg_query), conservatively:
// anything that may write, or that cannot be parsed, needs the primary.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "protocol/string_hash.hpp"

namespace meridian::routing {

enum class target : std::uint8_t {
  any,      // read-only: a replica may serve it
  primary,  // writes, DDL, volatile functions, unparseable input
};

enum class tx_effect : std::uint8_t {
  none,
  begin,            // BEGIN / START TRANSACTION (read-write or unspecified)
  begin_read_only,  // BEGIN READ ONLY / START TRANSACTION READ ONLY
  end,              // COMMIT, ROLLBACK, END, ABORT (and PREPARED variants)
};

struct classification {
  target where = target::primary;
  tx_effect tx = tx_effect::none;
  // State that lives in one server session and cannot follow the client to another
  // connection: temporary tables, session advisory locks, LISTEN, WITH HOLD cursors,
  // SET SESSION AUTHORIZATION / ROLE, SQL-level PREPARE.
  bool pins_session = false;
  bool parse_error = false;
  // Session parameters the statement sets or resets (SET/RESET outside SET LOCAL), lower-case;
  // "*" for RESET ALL and DISCARD ALL; set_config(name, …) with a constant name too (see
  // set_config_call). Names are identifiers, or literals kept in the cache key.
  std::vector<std::string> sets_parameters;
  bool discards_session = false;  // DISCARD ALL: no session state is left
  bool copy_in = false;           // COPY … FROM STDIN: the client sends data until CopyDone
  bool sets_meridian = false;     // SET/RESET of a meridian.* setting (checked by meridian_settings)
  bool shows_meridian = false;    // SHOW of a meridian.* setting (see meridian_show)
  // It may leave session state behind that Meridian cannot see (parameters, temporary tables,
  // LISTEN, ...): DO, CALL, or a call of a volatile function that is not PostgreSQL's own.
  bool may_leave_state = false;
  // The statement is a DEALLOCATE of one prepared statement, alone in its query (not ALL):
  // deallocated_name tells which. (A flag: classifications are copied per statement.)
  bool deallocates = false;
  // COMMIT, END or PREPARE TRANSACTION: what an open transaction block wrote becomes durable.
  // On the primary it needs write authority like the block's start did (a ROLLBACK needs none).
  bool commits = false;
  // It makes a relation that only the primary can read (see primary_only_relation): the
  // session tells every worker which (primary_only_relations_made) before it is sent.
  bool makes_primary_only = false;
  // DDL (any statement an event trigger may fire on): objects it makes go away if its
  // transaction rolls back.
  bool ddl = false;
  // It may drop or change an object a prepared statement was planned with (DROP, ALTER,
  // RENAME, ...): server-side statements prepared before it are not used again.
  bool invalidates_statements = false;
  bool operator==(const classification&) const = default;
};

// Function volatility as pg_proc records it ('i', 's', 'v'), by function name. A name with any
// volatile overload counts as volatile; unknown names count as volatile.
class function_volatility {
 public:
  void add(std::string name, char volatility);
  // Names an operator declared safe to run on replicas whatever pg_proc says.
  void allow(std::string name);
  // `qualified` is schema.name when the call named a schema: the allow-list may name either.
  [[nodiscard]] bool read_only(std::string_view name, std::string_view qualified = {}) const;
  // A function of the application's (volatile, outside pg_catalog) that may leave session
  // state behind: its body sets a parameter, makes a temporary table, listens, takes a session
  // lock, runs dynamic SQL (see worker::set_functions), or it is not in SQL or PL/pgSQL.
  void mark_stateful(std::string name);
  // The rest of the application's volatile functions, with their bodies: one whose body names a
  // stateful function is stateful too, until nothing changes.
  void settle(const std::vector<std::pair<std::string, std::string>>& bodies);
  // Whether a call may leave session state behind unseen: the name is not known, or a function
  // of that name is stateful. (PostgreSQL's own functions that do leave state, set_config and
  // the session advisory locks, the classifier handles by name.)
  [[nodiscard]] bool may_leave_state(std::string_view name, std::string_view qualified = {}) const;
  // A trigger on `relation` (schema.name) runs `function`: once settled, a write to a relation
  // one of whose trigger functions is stateful may leave session state behind.
  void add_trigger(std::string relation, std::string function);
  // `qualified` is schema.name when the statement named a schema; a bare name matches the
  // relation of that name in any schema (search_path is not followed: the safe side).
  [[nodiscard]] bool fires_stateful_trigger(std::string_view name, std::string_view qualified = {}) const;
  // An event trigger runs `function` on DDL: once settled, any DDL may leave session state
  // behind when one of them is stateful.
  void add_event_trigger(std::string function);
  [[nodiscard]] bool ddl_may_leave_state() const { return stateful_event_trigger_; }
  // A relation a replica cannot read while in recovery: unlogged (tables, sequences), or a
  // view or partitioned table over one. Reads that name it need the primary. `relation` is
  // schema.name as the catalog gives it, or a bare name (learned from a statement that named
  // no schema), which then matches that name in any schema.
  void add_primary_only_relation(std::string_view relation);
  [[nodiscard]] bool primary_only_relation(std::string_view name, std::string_view qualified = {}) const;
  [[nodiscard]] bool has_primary_only_relations() const { return !primary_only_.empty(); }
  [[nodiscard]] std::size_t size() const { return volatile_.size() + stable_.size(); }

 private:
  using name_set = std::unordered_set<std::string, protocol::string_hash, std::equal_to<>>;
  name_set volatile_;
  name_set stable_;  // immutable or stable
  name_set allowed_;
  name_set stateful_;
  std::vector<std::pair<std::string, std::string>> triggers_;  // relation (schema.name), function
  name_set stateful_trigger_relations_;                          // schema.name and name
  std::vector<std::string> event_triggers_;                      // their functions
  bool stateful_event_trigger_ = false;
  name_set primary_only_;             // schema.name, and the bare name of each
  name_set primary_only_any_schema_;  // bare names learned without a schema
};

using volatility_ptr = std::shared_ptr<const function_volatility>;

// Classifies one query string (which may hold several statements).
[[nodiscard]] classification classify(std::string_view sql, const function_volatility& functions);

// The relations a query makes that only the primary can read (schema.name where it names a
// schema): CREATE UNLOGGED TABLE (… AS, PARTITION OF: its parents too), SELECT … INTO
// UNLOGGED, ALTER TABLE … SET UNLOGGED, and a view over a relation already known as such.
[[nodiscard]] std::vector<std::string> primary_only_relations_made(std::string_view sql,
                                                                   const function_volatility& functions);

// The meridian.* settings a query's SET and RESET statements assign (LOCAL ones too): name
// (lower case) and value, no value for RESET and SET … TO DEFAULT.
struct setting_assignment {
  std::string name;
  std::optional<std::string> value;
};
[[nodiscard]] std::vector<setting_assignment> meridian_settings(std::string_view sql);
// The statement a query that is a lone DEALLOCATE name drops (empty for anything else).
[[nodiscard]] std::string deallocated_name(std::string_view sql);
// The setting named when the query is a single SHOW of a meridian.* setting.
[[nodiscard]] std::optional<std::string> meridian_show(std::string_view sql);

// A routing hint in a leading comment: /* meridian:primary */ or /* meridian:replica */.
enum class hint : std::uint8_t { none, primary, replica };
[[nodiscard]] hint leading_hint(std::string_view sql);

}  // namespace meridian::routing
