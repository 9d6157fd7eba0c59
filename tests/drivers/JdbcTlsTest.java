// pgJDBC with sslmode=verify-full against the sandbox's CA: the connection is encrypted and
// Meridian's certificate verified (name included); a CA that did not sign it fails the
// handshake. (Debian's pgJDBC 42.5 has no setting to require channel binding; libpq's
// channel_binding=require is tested in tls_test.cpp.)
import java.sql.*;

public class JdbcTlsTest {
  public static void main(String[] args) throws Exception {
    String base = System.getenv("MERIDIAN_JDBC_URL");
    String ca = System.getenv("MERIDIAN_CA");
    String otherCa = System.getenv("MERIDIAN_OTHER_CA");
    String verified = base + "?sslmode=verify-full&sslrootcert=" + ca;
    try (Connection c = DriverManager.getConnection(verified, "app", "app-secret");
         Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT 40 + 2")) {
      if (!rs.next() || rs.getInt(1) != 42) fail("a query over verify-full TLS");
    }
    try (Connection c = DriverManager.getConnection(base + "?sslmode=verify-full&sslrootcert=" + otherCa, "app", "app-secret")) {
      fail("a certificate from another CA was accepted");
    } catch (SQLException e) {
      // pgJDBC wraps the handshake failure: "SSL error: PKIX path building failed ..."
      String all = e.toString() + " " + (e.getCause() == null ? "" : e.getCause().toString());
      if (!all.contains("SSL")) fail("expected an SSL error, got: " + all);
    }
    System.out.println("jdbc tls: verify-full connected and queried; another CA refused");
  }

  static void fail(String what) {
    System.err.println("FAILED: " + what);
    System.exit(1);
  }
}
