package io.tuneline.common.store;

import io.quarkus.runtime.StartupEvent;
import jakarta.annotation.Priority;
import jakarta.enterprise.event.Observes;
import jakarta.enterprise.inject.Disposes;
import jakarta.enterprise.inject.Produces;
import jakarta.inject.Singleton;
import jakarta.interceptor.Interceptor;
import org.jboss.logging.Logger;

/** One {@link ArtifactStore} per service, closed at shutdown. */
@Singleton
public class ArtifactStoreProducer {
    private static final Logger LOG = Logger.getLogger(ArtifactStoreProducer.class);

    @Produces
    @Singleton
    ArtifactStore artifactStore(StoreConfig config) {
        return new ArtifactStore(config.settings());
    }

    void close(@Disposes ArtifactStore store) {
        store.close();
    }

    /**
     * Creates the bucket at start-up when configured to, before any other start-up observer of the
     * service reads the store. A store that is down does not stop the service from starting:
     * readiness reports it until it answers.
     */
    void onStart(
            @Observes @Priority(Interceptor.Priority.PLATFORM_BEFORE) StartupEvent event,
            StoreConfig config,
            ArtifactStore store) {
        if (!config.createBucket()) {
            return;
        }
        try {
            store.ensureBucket();
        } catch (ArtifactStoreException e) {
            LOG.warnf("object store not ready at start-up: %s", e.getMessage());
        }
    }
}
