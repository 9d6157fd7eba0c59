#include "routing/classifier.hpp"

#include <pg_query.h>

#include <algorithm>

#include <nlohmann/json.hpp>

namespace meridian::routing {

using json = nlohmann::json;

void function_volatility::add(std::string name, char volatility) {
  if (volatility == 'v') {
    stable_.erase(name);
    volatile_.insert(std::move(name));
  } else if (!volatile_.count(name)) {
    stable_.insert(std::move(name));
  }
}

void function_volatility::allow(std::string name) { allowed_.insert(std::move(name)); }

bool function_volatility::read_only(std::string_view name, std::string_view qualified) const {
  if (allowed_.count(name) || (!qualified.empty() && allowed_.count(qualified))) return true;
  return stable_.count(name) && !volatile_.count(name);
}

void function_volatility::mark_stateful(std::string name) { stateful_.insert(std::move(name)); }

namespace {
bool identifier_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$' ||
         static_cast<unsigned char>(c) >= 0x80;
}
// Whether `text` (lower case) holds `word` as a whole identifier.
bool mentions(std::string_view text, std::string_view word) {
  for (auto at = text.find(word); at != std::string_view::npos; at = text.find(word, at + 1)) {
    const bool starts = at == 0 || !identifier_char(text[at - 1]);
    const bool ends = at + word.size() == text.size() || !identifier_char(text[at + word.size()]);
    if (starts && ends) return true;
  }
  return false;
}
}  // namespace

void function_volatility::settle(const std::vector<std::pair<std::string, std::string>>& bodies) {
  std::vector<std::pair<std::string, std::string>> open;  // not stateful yet: name, lower-case body
  for (const auto& [name, body] : bodies) {
    if (stateful_.count(name)) continue;
    std::string lowered = body;
    for (auto& c : lowered)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    open.emplace_back(name, std::move(lowered));
  }
  for (bool changed = true; changed;) {
    changed = false;
    for (auto it = open.begin(); it != open.end();) {
      bool calls_stateful = false;
      for (const auto& s : stateful_)
        if (s != it->first && mentions(it->second, s)) calls_stateful = true;
      if (calls_stateful) {
        stateful_.insert(it->first);
        it = open.erase(it);
        changed = true;
      } else {
        ++it;
      }
    }
  }
  for (const auto& [relation, function] : triggers_) {
    if (!stateful_.count(function)) continue;
    stateful_trigger_relations_.insert(relation);
    if (const auto dot = relation.find('.'); dot != std::string::npos) stateful_trigger_relations_.insert(relation.substr(dot + 1));
  }
  for (const auto& function : event_triggers_)
    if (stateful_.count(function)) stateful_event_trigger_ = true;
}

void function_volatility::add_event_trigger(std::string function) { event_triggers_.push_back(std::move(function)); }

void function_volatility::add_trigger(std::string relation, std::string function) {
  triggers_.emplace_back(std::move(relation), std::move(function));
}

bool function_volatility::fires_stateful_trigger(std::string_view name, std::string_view qualified) const {
  if (stateful_trigger_relations_.empty()) return false;
  return stateful_trigger_relations_.count(qualified.empty() ? name : qualified) > 0;
}

void function_volatility::add_primary_only_relation(std::string_view relation) {
  if (const auto dot = relation.find('.'); dot != std::string_view::npos) {
    primary_only_.emplace(relation);
    primary_only_.emplace(relation.substr(dot + 1));
  } else {
    primary_only_.emplace(relation);
    primary_only_any_schema_.emplace(relation);
  }
}

bool function_volatility::primary_only_relation(std::string_view name, std::string_view qualified) const {
  if (primary_only_.empty()) return false;
  return primary_only_.count(qualified.empty() ? name : qualified) > 0 || primary_only_any_schema_.count(name) > 0;
}

bool function_volatility::may_leave_state(std::string_view name, std::string_view qualified) const {
  if (qualified.rfind("pg_catalog.", 0) == 0) return false;
  if (stateful_.count(name)) return true;
  return !volatile_.count(name) && !stable_.count(name);
}

namespace {

// Node types that change data wherever they appear (a writable CTE hides them in a SELECT).
bool is_write_node(std::string_view type) {
  return type == "InsertStmt" || type == "UpdateStmt" || type == "DeleteStmt" || type == "MergeStmt";
}

// Functions pg_proc does not mark volatile that still cannot run on a standby: they assign a
// transaction id or read the primary's WAL position.
bool is_primary_only_function(std::string_view name) {
  return name == "txid_current" || name == "pg_current_xact_id" || name == "pg_current_wal_lsn" ||
         name == "pg_current_wal_insert_lsn" || name == "pg_current_wal_flush_lsn";
}

// Functions that take session-level locks: the lock outlives the transaction, so the session
// must stay on its connection.
bool is_session_lock_function(std::string_view name) {
  return name == "pg_advisory_lock" || name == "pg_advisory_lock_shared" || name == "pg_try_advisory_lock" ||
         name == "pg_try_advisory_lock_shared";
}

struct walker {
  const function_volatility& functions;
  classification result{target::any, tx_effect::none, false, false, {}, false, false, false, false, false, false};

  void needs_primary() { result.where = target::primary; }

  // Visits every node below `n`, applying the rules that hold anywhere in a tree.
  void visit(const json& n) {
    if (n.is_array()) {
      for (const auto& item : n) visit(item);
      return;
    }
    if (!n.is_object()) return;
    for (const auto& [key, value] : n.items()) {
      if (is_write_node(key)) needs_primary();
      if (key == "lockingClause" && value.is_array() && !value.empty()) needs_primary();  // FOR UPDATE/SHARE
      if (key == "intoClause") {  // SELECT … INTO
        needs_primary();
        if (auto rel = value.find("rel"); rel != value.end()) {
          const auto persistence = rel->value("relpersistence", "");
          if (persistence == "t") result.pins_session = true;
          if (persistence == "u") made_primary_only.push_back(qualified_name(*rel));
        }
      }
      if (key == "FuncCall") function_call(value);
      // A relation in a list is wrapped in its node type; a statement's target is not.
      if (key == "RangeVar" || key == "relation") relation(value);
      visit(value);
    }
  }

  // A relation the statement names: one with a stateful trigger function may leave session
  // state behind if the statement writes (settled in classify(), once its target is known).
  // A relation only the primary can read sends the statement there.
  void relation(const json& range_var) {
    if (!range_var.is_object()) return;
    const auto name = range_var.value("relname", "");
    const auto qualified = schema_qualified(range_var, name);
    if (functions.fires_stateful_trigger(name, qualified)) names_stateful_trigger = true;
    if (functions.primary_only_relation(name, qualified)) needs_primary();
  }
  // schema.name when the RangeVar names a schema, else empty (as function_volatility takes it).
  static std::string schema_qualified(const json& range_var, const std::string& name) {
    const auto schema = range_var.value("schemaname", "");
    return schema.empty() ? std::string() : schema + "." + name;
  }
  bool names_stateful_trigger = false;
  std::vector<std::string> made_primary_only{};  // see primary_only_relations_made

  // schema.name, or the bare name when no schema is named.
  static std::string qualified_name(const json& range_var) {
    const auto name = range_var.value("relname", "");
    const auto qualified = schema_qualified(range_var, name);
    return qualified.empty() ? name : qualified;
  }
  // Whether any relation named below `n` is one only the primary can read.
  bool reads_primary_only(const json& n) const {
    if (n.is_array()) {
      for (const auto& item : n)
        if (reads_primary_only(item)) return true;
      return false;
    }
    if (!n.is_object()) return false;
    for (const auto& [key, value] : n.items()) {
      if (key == "RangeVar" && value.is_object()) {
        const auto name = value.value("relname", "");
        if (functions.primary_only_relation(name, schema_qualified(value, name))) return true;
      }
      if (reads_primary_only(value)) return true;
    }
    return false;
  }
  bool ddl = false;  // a statement an event trigger may fire on

  void function_call(const json& call) {
    auto names = call.find("funcname");
    if (names == call.end() || !names->is_array() || names->empty()) {
      needs_primary();
      return;
    }
    // The last element is the function's name; a schema may precede it.
    const auto& last = names->back();
    auto s = last.find("String");
    if (s == last.end() || !s->contains("sval")) {
      needs_primary();
      return;
    }
    const auto name = (*s)["sval"].get<std::string>();
    std::string qualified;
    if (names->size() == 2) {
      const auto& schema = names->front();
      if (auto ss = schema.find("String"); ss != schema.end() && ss->contains("sval"))
        qualified = (*ss)["sval"].get<std::string>() + "." + name;
    }
    if (is_session_lock_function(name)) result.pins_session = true;
    if (name == "set_config" && (qualified.empty() || qualified == "pg_catalog.set_config")) {
      set_config_call(call);
      return;
    }
    if (is_primary_only_function(name) || !functions.read_only(name, qualified)) needs_primary();
    if (!is_session_lock_function(name) && functions.may_leave_state(name, qualified)) result.may_leave_state = true;
  }

  // set_config(name, value, is_local) is SET by another name (pg_dump and pg_restore begin with
  // set_config('search_path', '', false)). With the name a constant, the session tracks the
  // parameter as it tracks a SET: Meridian asks the server its value once the transaction is
  // over, so a local or rolled-back assignment costs only that question, and the statement runs
  // wherever a SET would. With the name computed, which parameter changes is not known: the
  // session stays on its server connection, which is reset before another client gets it.
  void set_config_call(const json& call) {
    auto args = call.find("args");
    if (args == call.end() || !args->is_array() || args->size() != 3) {
      needs_primary();  // not PostgreSQL's set_config: the server says what it is
      return;
    }
    const auto name = constant_text((*args)[0]);
    if (!name || !parameter_name(*name)) {
      result.pins_session = true;
      needs_primary();
      return;
    }
    auto lowered = *name;
    for (auto& c : lowered)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    // A standby refuses a read-write or serializable transaction: those go to the primary.
    if (lowered.rfind("transaction_", 0) == 0) needs_primary();
    if (constant_true((*args)[2])) return;  // lasts until the transaction's end
    if (lowered.rfind("meridian.", 0) == 0) return;  // the server's placeholder, not Meridian's setting
    if (std::find(result.sets_parameters.begin(), result.sets_parameters.end(), lowered) ==
        result.sets_parameters.end())
      result.sets_parameters.push_back(std::move(lowered));
  }

  // The text of a string constant ('…', or '…'::text), or nothing.
  static std::optional<std::string> constant_text(const json& n) {
    const json* c = &n;
    if (auto cast = n.find("TypeCast"); cast != n.end()) {
      auto arg = cast->find("arg");
      if (arg == cast->end()) return std::nullopt;
      c = &*arg;
    }
    auto a = c->find("A_Const");
    if (a == c->end()) return std::nullopt;
    auto s = a->find("sval");
    if (s == a->end()) return std::nullopt;
    return s->value("sval", "");
  }

  static bool constant_true(const json& n) {
    auto a = n.find("A_Const");
    if (a == n.end()) return false;
    auto b = a->find("boolval");
    return b != a->end() && b->value("boolval", false);
  }

  // What SHOW accepts unquoted: a name, or a custom one with a dot.
  static bool parameter_name(std::string_view name) {
    if (name.empty() || name.size() > 63) return false;
    for (char c : name)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
        return false;
    return true;
  }

  // The DefElem named `name` in an options list (BEGIN's, EXPLAIN's), or nullptr.
  static const json* find_option(const json& options, std::string_view name) {
    if (!options.is_array()) return nullptr;
    for (const auto& o : options) {
      auto d = o.find("DefElem");
      if (d != o.end() && d->value("defname", "") == name) return &*d;
    }
    return nullptr;
  }

  static bool truthy(std::string_view v) { return v == "true" || v == "on" || v == "yes" || v == "1"; }

  static bool read_only_option(const json& options) {
    const json* d = find_option(options, "transaction_read_only");
    if (!d) return false;
    auto arg = d->find("arg");
    if (arg == d->end()) return false;
    auto c = arg->find("A_Const");
    if (c == arg->end()) return false;
    auto ival = c->find("ival");
    return ival != c->end() && ival->value("ival", 0) == 1;
  }

  // EXPLAIN executes its statement only with ANALYZE (true, or given without a value).
  static bool explain_analyzes(const json& options) {
    const json* d = find_option(options, "analyze");
    if (!d) return false;
    auto arg = d->find("arg");
    if (arg == d->end()) return true;
    if (auto s = arg->find("String"); s != arg->end()) return truthy(s->value("sval", ""));
    if (auto i = arg->find("Integer"); i != arg->end()) return i->value("ival", 0) != 0;
    if (auto c = arg->find("A_Const"); c != arg->end()) {
      if (auto i = c->find("ival"); i != c->end()) return i->value("ival", 0) != 0;
      if (auto b = c->find("boolval"); b != c->end()) return b->value("boolval", false);
      if (auto s = c->find("sval"); s != c->end()) return truthy(s->value("sval", ""));
      return false;  // an A_Const with no value is false/0
    }
    return true;
  }

  void statement(const json& stmt) {
    if (!stmt.is_object() || stmt.empty()) {
      needs_primary();
      return;
    }
    // A statement node is an object with one key, its type.
    const auto first = stmt.begin();
    const std::string& type = first.key();
    const json& body = first.value();
    if (type == "SelectStmt") {
      visit(body);
    } else if (type == "VariableShowStmt") {
      // SHOW reads a setting.
      if (body.value("name", "").rfind("meridian.", 0) == 0) result.shows_meridian = true;
    } else if (type == "ExplainStmt") {
      // Without ANALYZE, EXPLAIN only plans: nothing runs, whatever the statement is.
      if (explain_analyzes(body.value("options", json::array()))) {
        if (auto q = body.find("query"); q != body.end()) statement(*q);
      }
    } else if (type == "TransactionStmt") {
      const auto kind = body.value("kind", "");
      if (kind == "TRANS_STMT_BEGIN" || kind == "TRANS_STMT_START") {
        result.tx = read_only_option(body.value("options", json::array())) ? tx_effect::begin_read_only : tx_effect::begin;
      } else if (kind == "TRANS_STMT_COMMIT" || kind == "TRANS_STMT_ROLLBACK") {
        result.tx = tx_effect::end;
        if (kind == "TRANS_STMT_COMMIT") result.commits = true;
      } else if (kind == "TRANS_STMT_PREPARE" || kind == "TRANS_STMT_COMMIT_PREPARED" ||
                 kind == "TRANS_STMT_ROLLBACK_PREPARED") {
        needs_primary();
        result.tx = tx_effect::end;
        if (kind == "TRANS_STMT_PREPARE") result.commits = true;
      }
      // SAVEPOINT, RELEASE, ROLLBACK TO: wherever the transaction runs.
    } else if (type == "VariableSetStmt") {
      const auto name = body.value("name", "");
      const auto kind = body.value("kind", "");
      if (name.rfind("meridian.", 0) == 0) result.sets_meridian = true;
      if (name == "session_authorization" || name == "role") {
        result.pins_session = true;
      } else if (kind == "VAR_RESET_ALL") {
        result.sets_parameters.emplace_back("*");
      } else if (kind == "VAR_SET_MULTI") {
        // SET TRANSACTION lasts one transaction; SET SESSION CHARACTERISTICS changes several
        // defaults at once and is rare enough to pin for.
        if (name != "TRANSACTION") result.pins_session = true;
      } else if (!body.value("is_local", false) && !name.empty()) {
        result.sets_parameters.push_back(name);
      }
    } else if (type == "DeclareCursorStmt") {
      constexpr int cursor_opt_hold = 0x0020;
      if (body.value("options", 0) & cursor_opt_hold) result.pins_session = true;
      if (auto q = body.find("query"); q != body.end()) statement(*q);
    } else if (type == "DiscardStmt") {
      if (body.value("target", "") == "DISCARD_ALL") {
        result.sets_parameters.emplace_back("*");
        result.discards_session = true;
      }
    } else if (type == "FetchStmt" || type == "ClosePortalStmt" ||
               type == "DeallocateStmt") {
      // Act on what this session already has.
    } else if (type == "CopyStmt") {
      if (body.value("is_from", false)) {
        needs_primary();
        if (auto r = body.find("relation"); r != body.end()) relation(*r);
        if (!body.contains("filename") && !body.value("is_program", false)) result.copy_in = true;
      } else if (auto q = body.find("query"); q != body.end()) {
        statement(*q);
      } else if (body.contains("filename") || body.value("is_program", false)) {
        needs_primary();  // server-side files and programs: not a replica's business
      } else if (auto r = body.find("relation"); r != body.end()) {
        relation(*r);  // COPY t TO STDOUT reads t
      }
    } else if (type == "PrepareStmt") {
      result.pins_session = true;
      if (auto q = body.find("query"); q != body.end()) statement(*q);
    } else if (type == "ExecuteStmt") {
      result.pins_session = true;
      needs_primary();
    } else if (type == "ListenStmt") {
      result.pins_session = true;
      needs_primary();
    } else if (type == "CreateStmt" || type == "CreateTableAsStmt" || type == "ViewStmt" ||
               type == "CreateSeqStmt") {
      // Temporary relations live in this session only.
      const json* rel = nullptr;
      if (auto r = body.find("relation"); r != body.end()) rel = &*r;
      if (auto into = body.find("into"); into != body.end()) {
        if (auto r = into->find("rel"); r != into->end()) rel = &*r;
      }
      if (auto v = body.find("view"); v != body.end()) rel = &*v;
      if (auto s = body.find("sequence"); s != body.end()) rel = &*s;
      if (rel && rel->value("relpersistence", "") == "t") result.pins_session = true;
      // Unlogged, or a view over what only the primary can read: only the primary can read it.
      bool primary_only = rel && rel->value("relpersistence", "") == "u";
      if (type == "ViewStmt" && functions.has_primary_only_relations())
        if (auto q = body.find("query"); q != body.end()) primary_only = primary_only || reads_primary_only(*q);
      if (primary_only) {
        made_primary_only.push_back(qualified_name(*rel));
        // A partition makes its parents' scans need the primary too.
        for (const auto& parent : body.value("inhRelations", json::array()))
          if (auto r = parent.find("RangeVar"); r != parent.end()) made_primary_only.push_back(qualified_name(*r));
      }
      ddl = true;
      needs_primary();
    } else if (type == "DoStmt" || type == "CallStmt") {
      // Code of the application's: whatever it does to the session is not seen here.
      result.may_leave_state = true;
      needs_primary();
    } else {
      // INSERT/UPDATE/DELETE/MERGE, DDL, LOCK, VACUUM, ANALYZE, NOTIFY, UNLISTEN, and anything
      // not known to be read-only. What it calls and the relations it names still count: a
      // stateful function, or a write that fires a stateful trigger, leaves state unseen.
      needs_primary();
      visit(body);
      if (type.rfind("Drop", 0) == 0 || type.rfind("Alter", 0) == 0 || type == "RenameStmt" ||
          type == "ReassignOwnedStmt")
        result.invalidates_statements = true;
      if (type == "AlterTableStmt" && sets_unlogged(body)) {
        if (auto r = body.find("relation"); r != body.end()) made_primary_only.push_back(qualified_name(*r));
      }
      if (!is_write_node(type) && type != "LockStmt" && type != "VacuumStmt" && type != "NotifyStmt" &&
          type != "UnlistenStmt" && type != "CheckPointStmt")
        ddl = true;
    }
  }

  static bool sets_unlogged(const json& alter) {
    for (const auto& cmd : alter.value("cmds", json::array()))
      if (auto c = cmd.find("AlterTableCmd"); c != cmd.end() && c->value("subtype", "") == "AT_SetUnLogged") return true;
    return false;
  }
};

}  // namespace

classification classify(std::string_view sql, const function_volatility& functions) {
  // libpg_query needs a NUL-terminated string; protocol views are not.
  std::string text(sql);
  auto parsed = pg_query_parse(text.c_str());
  classification out;
  if (parsed.error) {
    pg_query_free_parse_result(parsed);
    out.parse_error = true;
    return out;
  }
  json tree = json::parse(parsed.parse_tree, nullptr, false);
  pg_query_free_parse_result(parsed);
  if (tree.is_discarded()) {
    out.parse_error = true;
    return out;
  }
  walker w{functions};
  auto stmts = tree.find("stmts");
  if (stmts == tree.end() || !stmts->is_array() || stmts->empty()) return w.result;  // empty query
  for (const auto& s : *stmts) {
    auto stmt = s.find("stmt");
    if (stmt == s.end()) {
      w.needs_primary();
      continue;
    }
    w.statement(*stmt);
  }
  if (w.names_stateful_trigger && w.result.where == target::primary) w.result.may_leave_state = true;
  if (w.ddl && functions.ddl_may_leave_state()) w.result.may_leave_state = true;
  w.result.makes_primary_only = !w.made_primary_only.empty();
  w.result.ddl = w.ddl;
  if (stmts->size() == 1) {
    const auto& only = (*stmts)[0];
    if (auto stmt = only.find("stmt"); stmt != only.end() && stmt->is_object()) {
      if (auto d = stmt->find("DeallocateStmt"); d != stmt->end()) w.result.deallocates = !d->value("name", "").empty();
    }
  }
  return w.result;
}

namespace {
// The statements of a query as libpg_query's JSON; an empty array when it does not parse.
json statements_of(std::string_view sql) {
  std::string text(sql);
  auto parsed = pg_query_parse(text.c_str());
  if (parsed.error) {
    pg_query_free_parse_result(parsed);
    return json::array();
  }
  json tree = json::parse(parsed.parse_tree, nullptr, false);
  pg_query_free_parse_result(parsed);
  if (tree.is_discarded() || !tree.contains("stmts") || !tree["stmts"].is_array()) return json::array();
  return tree["stmts"];
}
}  // namespace

std::vector<std::string> primary_only_relations_made(std::string_view sql, const function_volatility& functions) {
  walker w{functions};
  for (const auto& s : statements_of(sql))
    if (auto stmt = s.find("stmt"); stmt != s.end()) w.statement(*stmt);
  return std::move(w.made_primary_only);
}

std::string deallocated_name(std::string_view sql) {
  auto stmts = statements_of(sql);
  if (stmts.size() != 1 || !stmts[0].contains("stmt")) return {};
  const auto& stmt = stmts[0]["stmt"];
  auto d = stmt.find("DeallocateStmt");
  return d == stmt.end() ? std::string() : d->value("name", "");
}

std::optional<std::string> meridian_show(std::string_view sql) {
  auto stmts = statements_of(sql);
  if (stmts.size() != 1 || !stmts[0].contains("stmt")) return std::nullopt;
  const auto& stmt = stmts[0]["stmt"];
  auto show = stmt.find("VariableShowStmt");
  if (show == stmt.end()) return std::nullopt;
  auto name = show->value("name", "");
  if (name.rfind("meridian.", 0) != 0) return std::nullopt;
  return name;
}

std::vector<setting_assignment> meridian_settings(std::string_view sql) {
  std::vector<setting_assignment> out;
  for (const auto& s : statements_of(sql)) {
    auto stmt = s.find("stmt");
    if (stmt == s.end() || !stmt->is_object()) continue;
    auto set = stmt->find("VariableSetStmt");
    if (set == stmt->end()) continue;
    const auto name = set->value("name", "");
    if (name.rfind("meridian.", 0) != 0) continue;
    setting_assignment a{name, std::nullopt};
    if (set->value("kind", "") == "VAR_SET_VALUE") {
      // One constant: a string or identifier (sval), a number (ival/fval) or a boolean.
      std::string value;
      for (const auto& arg : set->value("args", json::array())) {
        auto c = arg.find("A_Const");
        if (c == arg.end()) continue;
        if (auto v = c->find("sval"); v != c->end()) value += v->value("sval", "");
        else if (auto i = c->find("ival"); i != c->end()) value += std::to_string(i->value("ival", 0));
        else if (auto f = c->find("fval"); f != c->end()) value += f->value("fval", "");
        else if (auto b = c->find("boolval"); b != c->end()) value += b->value("boolval", false) ? "true" : "false";
      }
      a.value = value;
    }
    out.push_back(std::move(a));
  }
  return out;
}

hint leading_hint(std::string_view sql) {
  std::size_t i = 0;
  while (i < sql.size() && (sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\n' || sql[i] == '\r')) ++i;
  sql.remove_prefix(i);
  if (sql.substr(0, 2) != "/*") return hint::none;
  auto end = sql.find("*/");
  if (end == std::string_view::npos) return hint::none;
  auto body = sql.substr(2, end - 2);
  while (!body.empty() && body.front() == ' ') body.remove_prefix(1);
  while (!body.empty() && body.back() == ' ') body.remove_suffix(1);
  if (body == "meridian:primary") return hint::primary;
  if (body == "meridian:replica") return hint::replica;
  return hint::none;
}

}  // namespace meridian::routing
