package io.tuneline.registry.db;

import io.quarkus.arc.InjectableInstance;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.inject.Any;
import jakarta.inject.Inject;
import jakarta.persistence.EntityManager;

/**
 * The entity manager of whichever persistence unit is active: {@code h2} on one machine, {@code
 * postgresql} in clusters (see application.properties for why there are two).
 */
@ApplicationScoped
public class RegistryDatabase {
    private final EntityManager em;

    @Inject
    public RegistryDatabase(@Any InjectableInstance<EntityManager> managers) {
        this.em = managers.getActive();
    }

    public EntityManager em() {
        return em;
    }
}
