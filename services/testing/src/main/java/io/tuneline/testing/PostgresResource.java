package io.tuneline.testing;

import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import java.util.Map;

/**
 * Runs the application against a real PostgreSQL ({@link PostgresServer}) through the {@code
 * postgresql} datasource and persistence unit, with the H2 pair switched off.
 */
public class PostgresResource implements QuarkusTestResourceLifecycleManager {
    private PostgresServer server;

    @Override
    public Map<String, String> start() {
        server = PostgresServer.start();
        return Map.of(
                "quarkus.datasource.postgresql.jdbc.url", server.jdbcUrl(),
                "quarkus.datasource.postgresql.username", PostgresServer.USER,
                "quarkus.datasource.postgresql.password", "",
                "quarkus.datasource.postgresql.active", "true",
                "quarkus.hibernate-orm.postgresql.active", "true",
                "quarkus.datasource.h2.active", "false",
                "quarkus.hibernate-orm.h2.active", "false",
                "quarkus.flyway.h2.active", "false");
    }

    @Override
    public void stop() {
        if (server != null) {
            server.close();
        }
    }
}
