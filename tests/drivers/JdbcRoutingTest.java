// pgJDBC through the eu-west-1 Meridian: autocommit reads on the replica, a transaction with
// autocommit off on the primary (JDBC sends BEGIN in the same batch as the first statement),
// a read-only transaction on the replica, and one server-side prepared statement used on both.
import java.sql.*;

public class JdbcRoutingTest {
  static int checks = 0;

  static void check(boolean cond, String what) {
    checks++;
    if (!cond) {
      System.err.println("FAILED: " + what);
      System.exit(1);
    }
  }

  static int port(PreparedStatement ps) throws SQLException {
    try (ResultSet rs = ps.executeQuery()) {
      rs.next();
      return rs.getInt(1);
    }
  }

  public static void main(String[] args) throws Exception {
    String url = System.getenv("MERIDIAN_JDBC_URL");
    int primary = Integer.parseInt(System.getenv("MERIDIAN_PRIMARY_PORT"));
    int replica = Integer.parseInt(System.getenv("MERIDIAN_REPLICA_PORT"));
    try (Connection c = DriverManager.getConnection(url + "&prepareThreshold=1", "app", "app-secret");
         PreparedStatement where = c.prepareStatement("SELECT inet_server_port()")) {
      for (int i = 0; i < 20; i++) check(port(where) == replica, "autocommit read on the replica");

      c.setAutoCommit(false);
      for (int round = 0; round < 10; round++) {
        check(port(where) == primary, "first statement of a read-write transaction on the primary");
        check(port(where) == primary, "rest of the transaction on the primary");
        c.commit();
      }

      c.setReadOnly(true);  // readOnlyMode=transaction: BEGIN READ ONLY
      for (int round = 0; round < 10; round++) {
        check(port(where) == replica, "read-only transaction on the replica");
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT pg_is_in_recovery()")) {
          check(rs.next() && rs.getBoolean(1), "inside the read-only transaction, in recovery");
        }
        c.commit();
      }
      c.setReadOnly(false);
      c.setAutoCommit(true);
      for (int i = 0; i < 5; i++) check(port(where) == replica, "back to autocommit reads on the replica");
    }
    System.out.println("jdbc-routing: " + checks + " passed, 0 failed");
  }
}
