package io.tuneline.common.store;

import jakarta.inject.Inject;
import jakarta.inject.Singleton;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/** Ready when the platform bucket answers. */
@Readiness
@Singleton
public class ObjectStoreHealthCheck implements HealthCheck {
    private final ArtifactStore store;
    private final StoreConfig config;

    @Inject
    public ObjectStoreHealthCheck(ArtifactStore store, StoreConfig config) {
        this.store = store;
        this.config = config;
    }

    @Override
    public HealthCheckResponse call() {
        var response =
                HealthCheckResponse.named("object-store")
                        .withData("endpoint", config.endpoint())
                        .withData("bucket", config.bucket());
        try {
            if (store.bucketExists()) {
                return response.up().build();
            }
            return response.down().withData("error", "bucket does not exist").build();
        } catch (ArtifactStoreException e) {
            return response.down().withData("error", e.getMessage()).build();
        }
    }
}
