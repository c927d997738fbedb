/* mailvet signup-form widget */
