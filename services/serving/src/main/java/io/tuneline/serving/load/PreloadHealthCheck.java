package io.tuneline.serving.load;

import jakarta.enterprise.context.ApplicationScoped;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/** Ready once the versions of {@code tuneline.serving.preload} are in memory. */
@Readiness
@ApplicationScoped
public class PreloadHealthCheck implements HealthCheck {
    private final LoadedModels models;

    public PreloadHealthCheck(LoadedModels models) {
        this.models = models;
    }

    @Override
    public HealthCheckResponse call() {
        return HealthCheckResponse.named("preloaded-models")
                .status(models.preloaded())
                .withData("loaded", models.loaded().size())
                .build();
    }
}
