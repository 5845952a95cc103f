package io.tuneline.helm;

import io.smallrye.config.ConfigMapping;
import io.tuneline.serving.load.ServingConfig;
import java.lang.reflect.Method;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;

/**
 * The properties the serving service reads ({@link ServingConfig}, a {@code @ConfigMapping}), as
 * environment variable names: the chart may set only these, never invented keys.
 */
final class ServingProperties {
    private ServingProperties() {}

    /**
     * {@code tuneline.serving.limits.max-queued} becomes {@code
     * TUNELINE_SERVING_LIMITS_MAX_QUEUED}.
     */
    static Set<String> environmentNames() {
        Set<String> names = new TreeSet<>();
        String prefix = ServingConfig.class.getAnnotation(ConfigMapping.class).prefix();
        collect(ServingConfig.class, prefix, names);
        return names;
    }

    private static void collect(Class<?> type, String prefix, Set<String> names) {
        for (Method m : type.getDeclaredMethods()) {
            if (m.getParameterCount() != 0 || m.isDefault() || m.isSynthetic()) {
                continue;
            }
            // SmallRye's default naming: camelCase methods become kebab-case properties.
            String property = prefix + "." + m.getName().replaceAll("([a-z0-9])([A-Z])", "$1-$2");
            Class<?> result = m.getReturnType();
            if (result.isInterface() && result.getEnclosingClass() == ServingConfig.class) {
                collect(result, property, names);
            } else {
                names.add(property.replaceAll("[^A-Za-z0-9]", "_").toUpperCase(Locale.ROOT));
            }
        }
    }
}
