package io.tuneline.registry.db;

import static org.assertj.core.api.Assertions.assertThat;

import io.tuneline.testing.PostgresServer;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.UUID;
import org.flywaydb.core.Flyway;
import org.flywaydb.core.api.output.MigrateResult;
import org.junit.jupiter.api.Test;

/**
 * The registry's Flyway migrations on both databases: an empty database gets the whole schema; a
 * database that already holds models is migrated again without losing them.
 */
class MigrationsTest {

    private interface ConnectionSource {
        Connection open() throws SQLException;
    }

    private static void migratesEmptyThenPopulatedDatabase(
            String url, String user, ConnectionSource connect) throws SQLException {
        Flyway flyway =
                Flyway.configure()
                        .dataSource(url, user, "")
                        .locations("classpath:db/migration")
                        .load();
        MigrateResult first = flyway.migrate();
        assertThat(first.migrationsExecuted).isGreaterThanOrEqualTo(1);
        assertThat(flyway.info().pending()).isEmpty();

        try (Connection c = connect.open();
                Statement s = c.createStatement()) {
            s.executeUpdate(
                    "insert into models (name, task, tags, created_at, updated_at) values"
                            + " ('kept', 'SEQUENCE_CLASSIFICATION', '{}', current_timestamp,"
                            + " current_timestamp)");
            s.executeUpdate(
                    "insert into jobs (job_id, status, status_rank, updated_at, event_count)"
                            + " values ('kept-job', 'TRAINING', 4, current_timestamp, 3)");
        }

        MigrateResult again = flyway.migrate();
        assertThat(again.migrationsExecuted).isZero();
        flyway.validate();
        try (Connection c = connect.open();
                Statement s = c.createStatement();
                ResultSet rs =
                        s.executeQuery(
                                "select m.name, j.status from models m, jobs j where m.name ="
                                        + " 'kept' and j.job_id = 'kept-job'")) {
            assertThat(rs.next()).isTrue();
            assertThat(rs.getString(1)).isEqualTo("kept");
            assertThat(rs.getString(2)).isEqualTo("TRAINING");
        }
    }

    @Test
    void migratesAnEmptyAndAPopulatedH2Database() throws SQLException {
        String url = "jdbc:h2:mem:migrations-" + UUID.randomUUID() + ";DB_CLOSE_DELAY=-1";
        migratesEmptyThenPopulatedDatabase(
                url, "sa", () -> DriverManager.getConnection(url, "sa", ""));
    }

    @Test
    void migratesAnEmptyAndAPopulatedPostgresDatabase() throws SQLException {
        try (PostgresServer pg = PostgresServer.start()) {
            migratesEmptyThenPopulatedDatabase(pg.jdbcUrl(), PostgresServer.USER, pg::connect);
        }
    }
}
