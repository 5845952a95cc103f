package io.tuneline.registry.models;

import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.PostgresResource;
import io.tuneline.testing.S3ProxyResource;
import java.util.List;

/** The model API on the cluster database, a real PostgreSQL server. */
@QuarkusTest
@TestProfile(ModelsApiOnPostgresTest.OnPostgres.class)
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class ModelsApiOnPostgresTest extends ModelsApiContract {
    public static class OnPostgres implements QuarkusTestProfile {
        @Override
        public List<TestResourceEntry> testResources() {
            return List.of(new TestResourceEntry(PostgresResource.class));
        }
    }
}
