package io.tuneline.testing;

import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import java.util.Map;

/** Points the application's object store at an {@link InMemoryS3Server}; no Docker. */
public class S3ProxyResource implements QuarkusTestResourceLifecycleManager {
    private InMemoryS3Server server;

    @Override
    public Map<String, String> start() {
        server = InMemoryS3Server.start();
        return Map.of(
                "tuneline.store.endpoint", server.endpoint(),
                "tuneline.store.access-key", InMemoryS3Server.ACCESS_KEY,
                "tuneline.store.secret-key", InMemoryS3Server.SECRET_KEY);
    }

    @Override
    public void stop() {
        if (server != null) {
            server.close();
        }
    }
}
