package io.tuneline.registry.models;

import io.tuneline.registry.error.RegistryException;
import java.util.Arrays;
import java.util.Locale;

/** A version's lifecycle stage; at most one version of a model is in {@code PRODUCTION}. */
public enum Stage {
    NONE,
    STAGING,
    PRODUCTION,
    ARCHIVED;

    public static Stage parse(String name) {
        try {
            return valueOf(name.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException | NullPointerException e) {
            throw new RegistryException.BadRequest(
                    "unknown stage '" + name + "'; use one of " + Arrays.toString(values()));
        }
    }
}
