// pgJDBC through Meridian with server-side prepared statements from the first execution
// (prepareThreshold=1), transactions with autocommit off, errors and recovery.
import java.sql.*;

public class JdbcTest {
  static int checks = 0;

  static void check(boolean cond, String what) {
    checks++;
    if (!cond) {
      System.err.println("FAILED: " + what);
      System.exit(1);
    }
  }

  public static void main(String[] args) throws Exception {
    String url = System.getenv("MERIDIAN_JDBC_URL");
    try (Connection c = DriverManager.getConnection(url + "&prepareThreshold=1", "app", "app-secret")) {
      try (Statement s = c.createStatement()) {
        s.execute("CREATE TABLE IF NOT EXISTS driver_jdbc (id int PRIMARY KEY, v text)");
        s.execute("TRUNCATE driver_jdbc");
      }
      try (PreparedStatement ps = c.prepareStatement("SELECT ?::int + 1, ?::text")) {
        for (int i = 0; i < 300; i++) {
          ps.setInt(1, i);
          ps.setString(2, "v" + i);
          try (ResultSet rs = ps.executeQuery()) {
            check(rs.next() && rs.getInt(1) == i + 1 && rs.getString(2).equals("v" + i), "prepared select " + i);
          }
        }
      }

      c.setAutoCommit(false);
      try (PreparedStatement ins = c.prepareStatement("INSERT INTO driver_jdbc VALUES (?, ?)")) {
        for (int i = 0; i < 100; i++) {
          ins.setInt(1, i);
          ins.setString(2, "row" + i);
          ins.addBatch();
        }
        ins.executeBatch();
      }
      c.commit();
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*) FROM driver_jdbc")) {
        check(rs.next() && rs.getInt(1) == 100, "batch insert committed");
      }
      c.commit();

      try (PreparedStatement ins = c.prepareStatement("INSERT INTO driver_jdbc VALUES (?, ?)")) {
        ins.setInt(1, 1);
        ins.setString(2, "duplicate");
        ins.executeUpdate();
        check(false, "duplicate key must raise");
      } catch (SQLException e) {
        check("23505".equals(e.getSQLState()), "unique violation sqlstate, got " + e.getSQLState());
        c.rollback();
      }
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*) FROM driver_jdbc")) {
        check(rs.next() && rs.getInt(1) == 100, "rolled back");
      }
      c.commit();

      // A transaction's statements all see its own writes (they run on one server connection).
      try (Statement s = c.createStatement()) {
        s.executeUpdate("INSERT INTO driver_jdbc VALUES (500, 'in-tx')");
        try (ResultSet rs = s.executeQuery("SELECT v FROM driver_jdbc WHERE id = 500")) {
          check(rs.next() && rs.getString(1).equals("in-tx"), "read own write inside transaction");
        }
      }
      c.rollback();
      c.setAutoCommit(true);
      try (PreparedStatement ps = c.prepareStatement("SELECT ?::int + 1, ?::text")) {
        for (int i = 0; i < 50; i++) {
          ps.setInt(1, i);
          ps.setString(2, "again");
          try (ResultSet rs = ps.executeQuery()) {
            check(rs.next() && rs.getInt(1) == i + 1, "prepared reuse after rollback");
          }
        }
      }
    }
    System.out.println("jdbc: " + checks + " passed, 0 failed");
  }
}
