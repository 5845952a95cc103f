package io.tuneline.common.messaging;

import io.tuneline.common.event.EventCodec;
import io.tuneline.common.event.IdempotencyGuard;
import jakarta.enterprise.inject.Produces;
import jakarta.inject.Singleton;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/** The codec and idempotency guard of a service, configured from its application name. */
@Singleton
public class MessagingBeans {

    @Produces
    @Singleton
    EventCodec eventCodec(@ConfigProperty(name = "quarkus.application.name") String service) {
        return new EventCodec("/tuneline/" + service);
    }

    @Produces
    @Singleton
    IdempotencyGuard idempotencyGuard(
            @ConfigProperty(name = "tuneline.idempotency.capacity", defaultValue = "100000")
                    int capacity) {
        return new IdempotencyGuard(capacity);
    }
}
