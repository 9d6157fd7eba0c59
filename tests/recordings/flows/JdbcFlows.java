// pgJDBC flows to record: `java JdbcFlows <flow>`, connecting to $PGHOST:$PGPORT.
import java.sql.*;

public class JdbcFlows {
  public static void main(String[] args) throws Exception {
    String url = "jdbc:postgresql://" + System.getenv("PGHOST") + ":" + System.getenv("PGPORT")
        + "/app?user=app&sslmode=disable";
    try (Connection c = DriverManager.getConnection(url)) {
      switch (args[0]) {
        case "batch": {
          c.setAutoCommit(false);
          try (PreparedStatement ps = c.prepareStatement("INSERT INTO rec_t (id, v) VALUES (?, ?)")) {
            for (int i = 400; i < 405; i++) {
              ps.setInt(1, i);
              ps.setString(2, "jdbc");
              ps.addBatch();
            }
            ps.executeBatch();
          }
          c.commit();
          break;
        }
        case "prepare-threshold": {
          // prepareThreshold (default 5): from the fifth run the statement is a named one.
          try (PreparedStatement ps = c.prepareStatement("SELECT ?::int * 2")) {
            for (int i = 0; i < 7; i++) {
              ps.setInt(1, i);
              try (ResultSet rs = ps.executeQuery()) { rs.next(); }
            }
          }
          try (Statement st = c.createStatement()) {
            st.executeUpdate("INSERT INTO rec_t (id, v) VALUES (410, 'jdbc')");
          }
          break;
        }
        case "fetch-size": {
          // A cursor-based read: a portal run with a row limit, PortalSuspended between fetches.
          c.setAutoCommit(false);
          try (Statement st = c.createStatement()) {
            st.setFetchSize(3);
            try (ResultSet rs = st.executeQuery("SELECT generate_series(1, 10)")) {
              while (rs.next()) {}
            }
          }
          c.commit();
          break;
        }
        default:
          throw new IllegalArgumentException(args[0]);
      }
    }
  }
}
